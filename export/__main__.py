from magvit_onnx.export.export_all import main

main()
