"""Reviewing a trained model: why it decides (explain) and for whom it fails (audit)."""
