"""magvit-onnx: MAGVIT as three ONNX graphs and a torch-free COMMIT runtime.

    from magvit_onnx import Generator
    clip = Generator("artifacts/tiny").generate("frame_prediction", video=frames, seed=0)

`import magvit_onnx` never imports torch; the PyTorch reference lives in
`magvit_onnx.models` and is only needed to train and export.
"""
__version__ = "0.3.0"


def __getattr__(name):
    # Lazy, so `import magvit_onnx` stays cheap and works without onnxruntime installed
    # (e.g. in a training environment that only uses the reference and the numpy core).
    if name == "Generator":
        from magvit_onnx.generator import Generator

        return Generator
    raise AttributeError(f"module 'magvit_onnx' has no attribute {name!r}")


__all__ = ["Generator", "__version__"]
