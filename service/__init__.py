"""HTTP inference service for ViT bundles on ONNX Runtime. Never imports torch."""
