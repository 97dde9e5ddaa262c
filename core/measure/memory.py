"""Memory figures for the report: a phase's peak resident memory and an artifact's size on disk.

Peak RSS of a phase (compiling, one batch size) is the whole process's: weights, engine arenas and
whatever earlier phases left resident, plus what the phase itself allocated. On Linux it is the
kernel's own high-water mark (VmHWM), reset when the phase starts through /proc/self/clear_refs, so
no short peak is missed and nothing runs beside the timed loop. Where that is unavailable a
background thread samples psutil's RSS instead (it may miss peaks shorter than its interval).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

MB = 1 << 20
SAMPLE_SECONDS = 0.005
_PROC = Path("/proc/self")


def mb(size: int | None) -> float | None:
    """Bytes as MB, one decimal (the report's unit)."""
    return None if size is None else round(size / MB, 1)


def _read_hwm() -> int | None:
    """VmHWM in bytes, or None where /proc does not give it."""
    try:
        for line in (_PROC / "status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # the kernel writes kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _release_free_heap() -> None:
    """Hand the C heap's free pages back to the kernel (glibc's malloc_trim), so what a phase allocates raises
    the resident set again instead of reusing pages an earlier phase freed (a peak probe's matrices, another
    batch size's buffers) and hiding in them. A no-op where the C library has no malloc_trim."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_hwm() -> bool:
    """Start a new high-water mark ('5' resets only the peak, see proc(5)); False where refused."""
    _release_free_heap()
    try:
        with open(_PROC / "clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return _read_hwm() is not None
    except OSError:
        return False


def current_rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class PeakRss:
    """`with PeakRss() as peak:` ... then `peak.peak_bytes` (None if nothing could be read)."""

    def __init__(self, interval: float = SAMPLE_SECONDS):
        self.interval = interval
        self.method: str | None = None
        self._sampled = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_bytes: int | None = None

    def __enter__(self) -> PeakRss:
        return self.start()

    def start(self) -> PeakRss:
        if _reset_hwm():
            self.method = "VmHWM"
        else:
            self.method = f"psutil RSS sampled every {self.interval * 1000:g} ms"
            self._sampled = current_rss()
            self._thread = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._sampled = max(self._sampled, current_rss())

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> int | None:
        """End the phase (idempotent) and return its peak in bytes."""
        if self.peak_bytes is None and self.method is not None:
            if self._thread is not None:
                self._stop.set()
                self._thread.join()
                self.peak_bytes = max(self._sampled, current_rss())
            else:
                self.peak_bytes = _read_hwm()
        return self.peak_bytes

    @property
    def peak_mb(self) -> float | None:
        return mb(self.stop())


def size_on_disk(path: Path | None) -> int | None:
    """Bytes of a compiled artifact: a folder's files, or a file plus its sidecars.

    Sidecars are the files beside it named after it (`model.onnx.data`, `model.data`): where ONNX keeps
    external weights, which are part of what a deployment ships.
    """
    if path is None:
        return None
    path = Path(path)
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        sidecars = [p for p in path.parent.glob(f"{path.stem}.*") if p != path and p.is_file()]
        return path.stat().st_size + sum(p.stat().st_size for p in sidecars)
    except OSError:
        return None


def artifact_size_mb(artifact: Path | None) -> float | None:
    return mb(size_on_disk(artifact))


def perf_memory_fields(peak: PeakRss) -> dict[str, Any]:
    """A Performance row's host memory field (PerfRow's name): the batch size's peak RSS. Device memory
    comes from the backend's meters."""
    return {"peak_rss_mb": peak.peak_mb}


def compile_memory_fields(peak: PeakRss, artifact: Path | None) -> dict[str, Any]:
    """Graph Compile's memory fields (a cache hit's peak is loading the cached artifact, not building it)."""
    return {"peak_rss_mb": peak.peak_mb, "artifact_size_mb": artifact_size_mb(artifact), "peak_rss_method": peak.method}
