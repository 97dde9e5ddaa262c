"""Backends: one package per hardware type (backends/<HW>/) exposing `BACKEND`, a BackendSpec.

A separately installed package can add a hardware type through the entry-point group
`perfbench.backends` (name = hardware type, value = a module or object providing BACKEND).
"""
