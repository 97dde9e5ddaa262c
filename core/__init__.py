"""perfbench core: configuration, measurement, orchestration and reports."""
