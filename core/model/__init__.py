"""Which weights, and the torch module a config builds."""
