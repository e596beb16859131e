"""Export of the PyTorch reference into three ONNX graphs + manifest (needs torch)."""
