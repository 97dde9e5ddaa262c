"""Serving an LLM as llm_perf's server does, and timing every request and token.

Closed loop (llm_perf): B clients, started `stagger` seconds apart, each send one prompt of exactly
`input_tokens` token ids and wait for exactly `output_tokens` greedy tokens before sending the next. Open
loop: requests arrive at times drawn in advance (core.measure.llm_load), whatever the server is doing; a
request the server notices late keeps its due time as its arrival. Either way the server batches
continuously: it prefills one request at a time (a waiting request goes before the next decode step) and
decodes every request in flight as one batch, each at its own position. Clients and server share one thread
and the clock: a client's next request arrives the moment its previous one completes, so nothing is slowed
by thread hand-offs.

Per request: arrival, prefill start and end, and the time of every token. TTFT counts from arrival, so it
includes the queue; the queue and the prefill are also reported apart.
"""

from __future__ import annotations

import heapq
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class LlmEngine(Protocol):
    """What the server needs of an engine: greedy next tokens, with a KV cache per slot."""

    slots: int  # requests it can hold at once

    def prefill(self, slot: int, ids: Sequence[int]) -> int: ...

    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> list[int]: ...

    def release(self, slot: int) -> None: ...


@dataclass
class Request:
    """One request's life, in ns on the perf_counter clock."""

    client: int
    prompt: tuple[int, ...]
    arrival: int  # when it was due: an open loop's schedule, a closed-loop client's send (never when noticed)
    prefill_start: int = 0
    prefill_end: int = 0
    token_times: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    decode_wait_ns: int = 0  # from each token to the decode step that continues it (others' prefills, mostly)
    decode_model_ns: int = 0  # time inside the decode steps it took part in
    slot: int = -1
    ready_since: int = 0  # when its last token came (it waits from then for the next decode step)
    max_tokens: int = 0  # tokens it asks for (0: the load point's output_tokens)
    tag: int = -1  # the arrival source's own id (LoadGen's query id)

    @property
    def done(self) -> int:
        return self.token_times[-1]

    @property
    def ttft_ns(self) -> int:
        return self.token_times[0] - self.arrival

    @property
    def e2e_ns(self) -> int:
        return self.done - self.arrival

    @property
    def tpot_ns(self) -> float | None:
        """llm_perf's TPOT: (E2E - TTFT) / (n - 1); None for a one-token request."""
        n = len(self.token_times)
        return (self.e2e_ns - self.ttft_ns) / (n - 1) if n > 1 else None

    @property
    def itl_ns(self) -> list[int]:
        return [b - a for a, b in zip(self.token_times, self.token_times[1:])]


@dataclass(frozen=True)
class Load:
    """One load point. Closed loop (rate None): `concurrency` clients, each sending again when answered
    (llm_perf's batch size B). Open loop: requests arrive at `rate` per second (gamma inter-arrival times of
    shape `burstiness`), at most `concurrency` in flight (the engine's slots), the rest queued."""

    concurrency: int
    input_tokens: int  # the longest prompt (every prompt, at fixed lengths)
    output_tokens: int  # the longest answer (every answer, at fixed lengths)
    window_s: float  # nothing is sent after this long (llm_perf's perf_time, or a budget's cut)
    min_requests: int = 0  # ... but not before this many were sent (default: one per client)
    stagger_s: float = 1.0
    stop_reason: str = "perf_time"  # what set window_s
    rate: float | None = None  # requests per second, open loop
    burstiness: float = 1.0
    seed: int = 0  # of the arrival times

    @property
    def open_loop(self) -> bool:
        return self.rate is not None


@dataclass
class Served:
    """The timed requests of one load point and the window they ran in."""

    load: Load
    requests: list[Request]
    start_ns: int
    end_ns: int
    stop_reason: str
    joules: float | None = None  # the host's energy counter over the window, where it has one

    @property
    def seconds(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    def samples(self) -> dict[str, tuple[int, ...]]:
        """Per request (in completion order) TTFT, TPOT and E2E in ns, and every token's time from the
        window's start: what compare tests a change against."""
        return {
            "ttft_ns": tuple(r.ttft_ns for r in self.requests),
            "tpot_ns": tuple(round(r.tpot_ns) for r in self.requests if r.tpot_ns is not None),
            "e2e_ns": tuple(r.e2e_ns for r in self.requests),
            "token_ns": tuple(sorted(t - self.start_ns for r in self.requests for t in r.token_times)),
        }


class Prompts:
    """Seeded prompts, no two sharing their first two tokens (so no prefix is shared), unless `shared_prefix`
    asks for every prompt to start with the same that many tokens (to measure prefix caching).

    Lengths are `length` (and the load point's output tokens) unless `lengths` draws them per request."""

    def __init__(
        self, vocab_size: int, length: int, seed: int, reserved: int = 3, lengths=None, shared_prefix: int = 0
    ):
        self._rng = np.random.default_rng(seed)
        self._low = min(reserved, vocab_size - 1)
        self._high = vocab_size
        self._length = length
        self._lengths = lengths  # core.measure.llm_load.Lengths, or None: fixed
        self._seen: set[tuple[int, ...]] = set()
        self._prefix = tuple(int(i) for i in self._rng.integers(self._low, self._high, shared_prefix))

    @property
    def description(self) -> str:
        if self._prefix:
            return f"shared prefix: every prompt starts with the same {len(self._prefix)} tokens (on purpose)"
        return "unique: no two prompts share their first two tokens"

    def next(self, length: int | None = None) -> tuple[int, ...]:
        length = self._length if length is None else length
        prefix = self._prefix[: max(0, length - 1)]  # every prompt keeps at least one token of its own
        tail = length - len(prefix)
        while True:
            ids = tuple(int(i) for i in self._rng.integers(self._low, self._high, tail))
            if ids[:2] not in self._seen or len(self._seen) >= (self._high - self._low) ** min(2, tail):
                self._seen.add(ids[:2])
                return prefix + ids

    def draw(self, output_tokens: int) -> tuple[tuple[int, ...], int]:
        """A prompt and the tokens to ask for (at most `output_tokens`)."""
        if self._lengths is None:
            return self.next(), output_tokens
        length, answer = self._lengths.draw()
        return self.next(length), min(answer, output_tokens)


class Arrivals:
    """Where requests come from: times known in advance (`pending`, a heap of (due ns, client)), the
    server told of each first token and completion. Closed and open loops are this; LoadGen's queue is
    another (core.scenarios.llm_loadgen)."""

    def __init__(self, load: Load, prompts: Prompts, pending: list[tuple[int, int]]):
        self.load, self.prompts = load, prompts
        self.pending = sorted(pending)
        self.stop_reason = load.stop_reason

    def due(self, now: int) -> list[Request]:
        requests = []
        while self.pending and self.pending[0][0] <= now:
            at, client = heapq.heappop(self.pending)
            prompt, tokens = self.prompts.draw(self.load.output_tokens)
            requests.append(Request(client, prompt, arrival=at, max_tokens=tokens))
        return requests

    def done(self) -> bool:
        return not self.pending

    def wait(self, clock: Callable[[], int], sleep: Callable[[float], None]) -> None:
        """Nothing to serve: until the next arrival."""
        sleep(max(0.0, (self.pending[0][0] - clock()) / 1e9))

    def first_token(self, request: Request) -> None:
        pass

    def completed(self, request: Request) -> None:
        pass


class ClosedLoop(Arrivals):
    """`concurrency` clients started `stagger_s` apart; each sends again the moment it is answered, until
    the window closes and at least `min_requests` (default one per client) were sent."""

    def __init__(self, load: Load, prompts: Prompts, start: int):
        stagger = int(load.stagger_s * 1e9)
        super().__init__(load, prompts, [(start + i * stagger, i) for i in range(load.concurrency)])
        self.close = start + int(load.window_s * 1e9)
        self.wanted = max(load.min_requests, load.concurrency)
        self.sent = load.concurrency
        if self.pending and self.pending[-1][0] >= self.close:
            self.stop_reason = f"{load.stop_reason}, then {self.wanted} requests"

    def completed(self, request: Request) -> None:
        if request.done >= self.close and self.sent >= self.wanted:
            return
        if request.done >= self.close:
            self.stop_reason = f"{self.load.stop_reason}, then {self.wanted} requests"
        self.sent += 1
        heapq.heappush(self.pending, (request.done, request.client))


class OpenLoop(Arrivals):
    """Requests at the times of a gamma process drawn before the start (client = the request's number)."""

    def __init__(self, load: Load, prompts: Prompts, start: int):
        from core.measure.llm_load import arrival_offsets

        offsets = arrival_offsets(load.rate, load.burstiness, load.window_s, load.seed, max(1, load.min_requests))
        super().__init__(load, prompts, [(start + offset, i) for i, offset in enumerate(offsets)])


def serve(
    engine: LlmEngine,
    load: Load,
    prompts: Prompts,
    *,
    clock: Callable[[], int] = time.perf_counter_ns,
    sleep: Callable[[float], None] = time.sleep,
    arrivals: Callable[[Load, Prompts, int], Arrivals] | None = None,
) -> Served:
    """Run one load point: requests arrive (closed loop, open loop, or `arrivals`' own source) until the
    source is done, and the server finishes what is in flight. At most `load.concurrency` requests are in
    flight; the others wait in the queue, their wait counted in their queue time and TTFT."""
    if load.concurrency > engine.slots:
        raise ValueError(f"{load.concurrency} concurrent requests but the engine holds {engine.slots}")
    start = clock()
    make = arrivals or (OpenLoop if load.open_loop else ClosedLoop)
    source = make(load, prompts, start)
    waiting: deque[Request] = deque()
    active: list[Request] = []
    finished: list[Request] = []
    free = list(range(load.concurrency))[::-1]
    while not source.done() or waiting or active:
        now = clock()
        for request in source.due(now):
            request.max_tokens = request.max_tokens or load.output_tokens
            waiting.append(request)
        if waiting and free:
            request = waiting.popleft()
            request.slot = free.pop()
            request.prefill_start = clock()
            token = engine.prefill(request.slot, request.prompt)
            request.prefill_end = now = clock()
            _emit(request, token, now)
            source.first_token(request)
            active.append(request)
        elif active:
            begin = clock()
            tokens = engine.decode([r.slot for r in active], [r.tokens[-1] for r in active])
            now = clock()
            for request, token in zip(active, tokens):
                request.decode_wait_ns += max(0, begin - request.ready_since)
                request.decode_model_ns += now - begin
                _emit(request, token, now)
        else:
            source.wait(clock, sleep)
            continue
        for request in [r for r in active if len(r.tokens) >= r.max_tokens]:
            active.remove(request)
            engine.release(request.slot)
            free.append(request.slot)
            finished.append(request)
            source.completed(request)
    end = max((r.done for r in finished), default=clock())
    return Served(load, finished, start, end, source.stop_reason)


def _emit(request: Request, token: int, at: int) -> None:
    request.tokens.append(int(token))
    request.token_times.append(at)
    request.ready_since = at
    if len(request.tokens) > request.max_tokens:
        raise RuntimeError("a request received more tokens than asked for")


def warm_up(engine: LlmEngine, load: Load, prompts: Prompts, requests: int) -> float:
    """Serve `requests` rounds of the load point's shapes untimed (first calls allocate and pick kernels);
    seconds spent."""
    if requests <= 0:
        return 0.0
    began = time.perf_counter()
    warm = Load(load.concurrency, load.input_tokens, min(load.output_tokens, 4), 0.0, requests, 0.0)
    serve(engine, warm, prompts)
    return time.perf_counter() - began
