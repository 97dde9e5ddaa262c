"""Is the answer still right: numeric drift, the CPU FP32 reference, the accuracy gate, engine selection."""
