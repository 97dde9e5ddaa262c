"""One benchmark run as a sequence of named stages."""
