"""Deployment: predictor backends (ONNX Runtime or in-process), export with parity checks,
batch prediction locally or on Ray."""
