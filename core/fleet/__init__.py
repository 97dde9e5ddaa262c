"""Sweeps over tasks and hardware types, each job in its own process, here or on a Ray cluster."""
