"""The PyTorch reference of MAGVIT (training-time and export-time only; needs torch)."""
