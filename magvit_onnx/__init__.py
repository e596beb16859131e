"""magvit-onnx: MAGVIT as three ONNX graphs and a torch-free COMMIT runtime.

`import magvit_onnx` never imports torch; the PyTorch reference lives in
`magvit_onnx.models` and is only needed to train and export.
"""
__version__ = "0.1.0"
