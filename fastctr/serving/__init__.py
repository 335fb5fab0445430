"""Serving artifacts: read-only scorers (float32, float16, int8) and the model-file format
with the registry of the classes a file may name."""
