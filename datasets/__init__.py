"""Dataset loaders. A loader turns a dataset into model inputs and scores model outputs.

Note: this package shadows Hugging Face's `datasets`; the project does not use that library.
"""
