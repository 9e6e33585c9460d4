"""CRNN pipelines: preprocess, train, evaluate, register and score CRNN models."""

__version__ = "0.1.0"
