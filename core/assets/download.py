"""HTTP downloads that survive bad networks: resume with Range, retries with backoff, separate
connect/read timeouts, size and sha256 checks. Standard library only (urllib honours *_proxy variables)."""

from __future__ import annotations

import http.client
import logging
import os
import re
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlsplit

from core.common.digest import file_sha256
from core.common.errors import UserError

log = logging.getLogger(__name__)

_TRUTHY = {"1", "true", "yes", "on"}
_CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclass(frozen=True)
class NetOptions:
    connect_timeout: float = 10.0  # seconds to open the TCP (and TLS) connection
    read_timeout: float = 60.0  # seconds without a byte before a read gives up
    retries: int = 4  # further attempts after the first; each resumes where the last stopped
    backoff: float = 1.0  # seconds before the first retry, doubled for each next one
    probe_timeout: float = 3.0  # network_available's limit
    progress: bool = True  # tqdm bar on stderr (shown on terminals only)


def offline_forced() -> bool:
    """True when the user's HF_HUB_OFFLINE or PERFBENCH_OFFLINE says never to touch the network (not the
    HF_HUB_OFFLINE that `core` sets by default for the hub's own calls)."""
    from core.common.paths import HUB_OFFLINE_DEFAULT

    variables = ["PERFBENCH_OFFLINE"] + ([] if os.environ.get(HUB_OFFLINE_DEFAULT) else ["HF_HUB_OFFLINE"])
    return any(os.environ.get(var, "").strip().lower() in _TRUTHY for var in variables)


def network_available(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the URL's host (or its proxy) opens within `timeout` seconds.

    The probe runs in a daemon thread because name resolution has no timeout of its own.
    """
    if offline_forced():
        return False
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    if not host:
        return False
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_parts.hostname, proxy_parts.port or 8080
    reached: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            reached.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, name="perfbench-net-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(reached)


@dataclass(frozen=True)
class Downloaded:
    path: Path
    sha256: str
    size: int


class _Transient(Exception):
    """A failure worth retrying: connection trouble, timeouts, 5xx, a short body."""


class _ReadTimeout:
    """Connection mixin: after connecting, reads use their own timeout instead of the connect one."""

    def __init__(self, *args, read_timeout: float, **kwargs):
        super().__init__(*args, **kwargs)
        self._read_timeout = read_timeout

    def connect(self) -> None:
        super().connect()
        self.sock.settimeout(self._read_timeout)


class _HTTPConnection(_ReadTimeout, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_ReadTimeout, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, read_timeout: float):
        super().__init__()
        self._read_timeout = read_timeout

    def http_open(self, req):
        return self.do_open(partial(_HTTPConnection, read_timeout=self._read_timeout), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, read_timeout: float):
        super().__init__()
        self._read_timeout = read_timeout

    def https_open(self, req):
        return self.do_open(partial(_HTTPSConnection, read_timeout=self._read_timeout), req, context=self._context)


def download(
    url: str,
    target: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    options: NetOptions = NetOptions(),
    label: str | None = None,
) -> Downloaded:
    """Fetch `url` to `target`, resuming from `target.part` if an earlier run was cut off.

    The result is checked against `size` and `sha256` when given; a file that fails the check is
    deleted, so the next run starts clean. Raises UserError naming the URL and the problem.
    """
    if urlsplit(url).scheme not in ("http", "https"):
        raise UserError(f"unsupported URL scheme in {url!r}", fix="use an http:// or https:// URL")
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    opener = urllib.request.build_opener(_HTTPHandler(options.read_timeout), _HTTPSHandler(options.read_timeout))
    for attempt in range(options.retries + 1):
        try:
            _fetch(opener, url, part, options, label or target.name)
            break
        except _Transient as err:
            if attempt == options.retries:
                raise UserError(
                    f"download failed after {attempt + 1} attempt(s): {err}",
                    file=url,
                    fix="check the network, or point PERFBENCH_BASE_URL/--base-url at a reachable mirror",
                ) from None
            delay = options.backoff * 2**attempt
            log.warning("download of %s: %s; retrying in %.1f s", url, err, delay)
            time.sleep(delay)
    got_size = part.stat().st_size
    got_sha = file_sha256(part)
    problem = None
    if size is not None and got_size != size:
        problem = f"size {got_size} bytes, expected {size}"
    elif sha256 is not None and got_sha != sha256:
        problem = f"sha256 {got_sha}, expected {sha256}"
    if problem:
        part.unlink()
        raise UserError(
            f"downloaded file failed verification: {problem}",
            file=url,
            fix="the server sent different bytes; try again later or check the mirror",
        )
    os.replace(part, target)
    return Downloaded(target, got_sha, got_size)


def _fetch(opener: urllib.request.OpenerDirector, url: str, part: Path, options: NetOptions, label: str) -> None:
    """One attempt: request the rest of the file and append it to `part`."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "perfbench", "Accept-Encoding": "identity"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = opener.open(request, timeout=options.connect_timeout)
    except HTTPError as err:
        if err.code == 416 and have:
            part.unlink()  # our partial file is longer than the server's: start over
            raise _Transient("server refused to resume (HTTP 416)") from None
        if err.code in (408, 429) or err.code >= 500:
            raise _Transient(f"HTTP {err.code} {err.reason}") from None
        raise UserError(
            f"HTTP {err.code} {err.reason}", file=url, fix="check the URL, or the base URL it is built from"
        ) from None
    except (OSError, http.client.HTTPException) as err:
        raise _Transient(_reason(err)) from None
    with response:
        mode, start = "wb", 0
        if have and response.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                raise _Transient(f"server answered Range {have}- with {response.headers.get('Content-Range')!r}")
            mode, start = "ab", have
        elif have:
            log.info("%s: server ignored the Range request; downloading from the start", url)
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        received = start
        from tqdm import tqdm

        with (
            open(part, mode) as out,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=label,
                leave=False,
                disable=None if options.progress else True,
            ) as bar,
        ):
            try:
                for block in iter(partial(response.read, _CHUNK), b""):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as err:
                raise _Transient(f"{_reason(err)} after {received} bytes") from None
    if total is not None and received < total:
        raise _Transient(f"connection closed after {received} of {total} bytes")


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None) or err
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    return str(reason) or type(reason).__name__
