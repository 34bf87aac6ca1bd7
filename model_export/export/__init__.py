"""ONNX export, the model bundle writer, verification, regeneration and inspection."""
