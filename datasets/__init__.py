"""Dataset loaders. A loader turns a dataset into model inputs and scores model outputs.

This package's name is Hugging Face `datasets`'s too; perfbench never uses that library, and importing
`core` binds the name to this package (see core/__init__.py), so the two can be installed side by side.
"""
