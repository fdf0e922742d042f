"""Data checks: unreadable and odd files, duplicates and leakage, outliers, classes, labels."""

from .findings import Finding
from .run import CheckReport, check

__all__ = ["CheckReport", "Finding", "check"]
