"""A fake clock for the LLM server's tests: engines advance it, the server's sleeps advance it, nothing waits."""

from __future__ import annotations


class FakeClock:
    def __init__(self):
        self.ns = 0

    def __call__(self):
        return self.ns

    def advance(self, ms):
        self.ns += int(ms * 1e6)

    def sleep(self, seconds):
        self.ns += int(seconds * 1e9)
