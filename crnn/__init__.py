"""CRNN pipelines: preprocess, train, evaluate, register and score convolutional recurrent networks."""

__version__ = "0.1.0"
