"""Measuring: the timed loop and its stop rules, concurrent clients, dataset passes, memory, host facts."""
