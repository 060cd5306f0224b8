"""DLA-compatibility analysis and function-preserving rewrites of ONNX graphs."""
