"""What to run: the workload and model-zoo schema, the registry of names, and the overrides that make
the effective workload."""
