"""The one HTTP downloader every source uses (weights, Midjourney images).

Why not `urllib.request.urlretrieve`: a 550 MB file over a flaky link must resume where it stopped,
never leave a half file under the final name, and prove its checksum before anyone loads it. So:
stream into `<dest>.part`, resume it with an HTTP Range request, hash while writing, verify, fsync,
then rename atomically. Transient failures (timeouts, resets, 5xx, 408/429) are retried with
exponential backoff; failures no retry can fix are final at once: HTTP 4xx (404, 403, 410, ...) with
their status, a host name that does not resolve, a refused connection, a TLS certificate that fails
verification.
Standard library only (urllib), so no extra dependency.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from stylekit import __version__
from stylekit.errors import MissingResource
from stylekit.io.atomic import _fsync_dir
from stylekit.io.console import get_console
from stylekit.offline import require_online

USER_AGENT = f"stylekit/{__version__} (python-urllib)"
CHUNK = 1 << 20
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})  # timeouts, rate limits, server errors
MAX_BACKOFF_S = 30.0


class DownloadError(MissingResource):
    """A URL could not be fetched intact (exit 3). `status` is the HTTP status when there was one."""

    def __init__(self, message: str, url: str, status: int | None = None, reason: str = "error", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.url = url
        self.status = status
        self.reason = reason


class HttpStatusError(DownloadError):
    """The server answered with an error status."""


class ChecksumMismatch(DownloadError):
    """The bytes arrived but their sha256 is not the expected one; nothing was kept."""


def _final_reason(exc: BaseException) -> tuple[str, str] | None:
    """(reason, text) when a connection failure cannot succeed on retry; None when it may (timeouts, resets)."""
    if isinstance(exc, socket.gaierror):
        return "dns", f"the host name does not resolve ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "the connection was refused (nothing listens there)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "tls", f"the server's TLS certificate fails verification ({exc.verify_message or exc})"
    return None


class _Retry(Exception):
    """A transient failure inside one attempt: retry (resuming from the .part file)."""


@dataclass
class Fetched:
    """One completed download."""

    path: Path
    url: str
    size: int
    sha256: str
    resumed_from: int
    attempts: int


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def checksum_ok(digest: str, sha256: str | None, sha256_prefix: str | None) -> bool:
    """True when `digest` matches the full checksum and/or prefix that are given (none given: True)."""
    if sha256 and digest.lower() != sha256.lower():
        return False
    return not (sha256_prefix and not digest.lower().startswith(sha256_prefix.lower()))


def _content_range_total(value: str | None) -> int | None:
    m = re.match(r"bytes\s+(?:\d+-\d+|\*)/(\d+)", value or "")
    return int(m.group(1)) if m else None


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"bytes\s+(\d+)-\d+/", value or "")
    return int(m.group(1)) if m else None


def _finish(part: Path, dest: Path, digest: str, url: str, sha256: str | None, sha256_prefix: str | None) -> None:
    if not checksum_ok(digest, sha256, sha256_prefix):
        part.unlink(missing_ok=True)
        want = sha256 or f"{sha256_prefix}..."
        raise ChecksumMismatch(
            f"checksum mismatch for {url}: got sha256 {digest}, expected {want}; the download was discarded",
            url=url,
            reason="checksum",
            hint="try again later or another mirror; if it persists the upstream file changed, please report it",
        )
    os.replace(part, dest)
    _fsync_dir(dest.parent)


def _hash_existing(part: Path) -> tuple[hashlib._Hash, int]:
    h = hashlib.sha256()
    size = 0
    with open(part, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h, size


def _attempt(
    url: str,
    dest: Path,
    sha256: str | None,
    sha256_prefix: str | None,
    timeout: float,
    progress: str | None,
    expected_size: int | None,
    require_image: bool,
) -> tuple[int, int, str]:
    """One try: returns (final size, offset resumed from, sha256). Raises _Retry for transient failures."""
    part = part_path(dest)
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            # The .part may already hold the whole file (a crash between the last byte and the rename).
            if _content_range_total(exc.headers.get("Content-Range")) == offset:
                h, _ = _hash_existing(part)
                _finish(part, dest, h.hexdigest(), url, sha256, sha256_prefix)
                return offset, offset, h.hexdigest()
            part.unlink(missing_ok=True)
            raise _Retry(f"HTTP 416 for a stale partial file; restarting {url}") from None
        if exc.code in RETRY_STATUSES:
            raise _Retry(f"HTTP {exc.code}") from None
        raise HttpStatusError(f"HTTP {exc.code} ({exc.reason}) for {url}", url=url, status=exc.code, reason=str(exc.code)) from None
    with response:
        status = getattr(response, "status", 200)
        if offset and status == 206:
            start = _content_range_start(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Retry(f"server resumed at byte {start}, not {offset}; restarting")
        elif offset:
            offset = 0  # The server ignored Range: start over.
        if require_image:
            ctype = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype and not (ctype.startswith("image/") or ctype == "application/octet-stream"):
                raise DownloadError(f"{url} is not an image ({ctype})", url=url, reason="not-image")
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        total = offset + length if length is not None else expected_size
        if offset:
            hasher, _ = _hash_existing(part)
        else:
            hasher = hashlib.sha256()
        written = 0
        console = get_console()
        with open(part, "ab" if offset else "wb") as fh:
            if progress:
                with console.progress(total, progress) as task:
                    task.advance(offset)
                    written = _copy(response, fh, hasher, task.advance)
            else:
                written = _copy(response, fh, hasher, None)
            fh.flush()
            os.fsync(fh.fileno())
        if length is not None and written < length:
            raise _Retry(f"connection closed after {offset + written} of {offset + length} bytes")
    digest = hasher.hexdigest()
    _finish(part, dest, digest, url, sha256, sha256_prefix)
    return offset + written, offset, digest


def _copy(response: http.client.HTTPResponse, fh, hasher, advance) -> int:  # type: ignore[no-untyped-def]
    written = 0
    while True:
        try:
            chunk = response.read(CHUNK)
        except http.client.IncompleteRead as exc:
            chunk = exc.partial
            if chunk:
                fh.write(chunk)
                hasher.update(chunk)
                written += len(chunk)
            return written
        if not chunk:
            return written
        fh.write(chunk)
        hasher.update(chunk)
        written += len(chunk)
        if advance is not None:
            advance(len(chunk))


def fetch_url(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    backoff: float = 1.0,
    progress: str | None = None,
    expected_size: int | None = None,
    require_image: bool = False,
) -> Fetched:
    """Download `url` to `dest` (resumable, verified, atomic). Returns what arrived.

    `retries` extra attempts follow a transient failure (timeout, reset, 5xx, 408, 429), sleeping
    backoff*2**k seconds (capped); each attempt resumes from the bytes already in `<dest>.part`. A
    failure no retry can fix (HTTP 4xx, unresolvable host, refused connection, bad TLS certificate) is
    raised at once. `progress` is the bar's label (None: no bar). Raises HttpStatusError for permanent
    HTTP errors, ChecksumMismatch (and no file left behind) when the bytes are wrong, DownloadError
    (reason "dns", "refused", "tls", "timeout" or "error") otherwise.
    """
    dest = Path(dest)
    require_online(url, f"curl -L --create-dirs -o {dest} {url}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    last = "no attempt"
    for attempt in range(retries + 1):
        if attempt:
            delay = min(backoff * 2 ** (attempt - 1), MAX_BACKOFF_S)
            get_console().log(f"retrying {url} in {delay:.0f}s (attempt {attempt + 1}/{retries + 1}): {last}")
            time.sleep(delay)
        try:
            size, resumed, digest = _attempt(url, dest, sha256, sha256_prefix, timeout, progress, expected_size, require_image)
        except _Retry as exc:
            last = str(exc)
            continue
        except urllib.error.URLError as exc:
            final = _final_reason(exc.reason) if isinstance(exc.reason, BaseException) else None
            if final is not None:
                raise DownloadError(f"could not download {url}: {final[1]}", url=url, reason=final[0]) from None
            last = f"{type(exc.reason).__name__}: {exc.reason}" if not isinstance(exc.reason, str) else exc.reason
            continue
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            final = _final_reason(exc)
            if final is not None:
                raise DownloadError(f"could not download {url}: {final[1]}", url=url, reason=final[0]) from None
            last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            continue
        return Fetched(dest, url, size, digest, resumed, attempt + 1)
    reason = "timeout" if "timed out" in last.lower() or "timeout" in last.lower() else "error"
    raise DownloadError(f"could not download {url} after {retries + 1} attempts: {last}", url=url, reason=reason)


def check_reachable(url: str, timeout: float = 10.0) -> None:
    """Raise DownloadError at once when `url`'s host does not resolve or refuses connections.

    For downloads done by another library (huggingface_hub retries those for ~20 s): one name lookup
    and one TCP connect, nothing sent. A timeout is not decided here (the download's own retries are),
    nor is anything when a proxy carries the request (the host may well not resolve from here)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if urllib.request.getproxies().get(parts.scheme) and not urllib.request.proxy_bypass(host):
        return
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except (OSError, TimeoutError) as exc:
        final = _final_reason(exc)
        if final is not None:
            raise DownloadError(f"could not download {url}: {final[1]}", url=url, reason=final[0]) from None


@dataclass
class Outcome:
    """What happened to one URL of a batch: fetched, exists (already there) or dead."""

    url: str
    dest: Path
    state: str
    reason: str = ""
    status: int | None = None


def fetch_many(
    jobs: Iterable[tuple[str, Path]],
    *,
    concurrency: int = 8,
    timeout: float = 30.0,
    retries: int = 2,
    backoff: float = 1.0,
    require_image: bool = False,
    progress: str = "downloading",
) -> list[Outcome]:
    """Fetch many small files with a bounded thread pool; an existing dest is skipped (resumable).

    Failures never stop the batch: each comes back as a dead Outcome with its HTTP status or reason.
    """
    jobs = list(jobs)
    outcomes: list[Outcome] = []
    todo: list[tuple[str, Path]] = []
    for url, dest in jobs:
        if dest.exists():
            outcomes.append(Outcome(url, dest, "exists"))
        else:
            todo.append((url, dest))
    if todo:
        require_online(f"downloading {len(todo)} file(s) (first: {todo[0][0]})", f"curl -L --create-dirs -o {todo[0][1]} {todo[0][0]}",
                       then="rerun this command without STYLEKIT_OFFLINE=1 for the rest")

    def one(url: str, dest: Path) -> Outcome:
        try:
            fetch_url(url, dest, timeout=timeout, retries=retries, backoff=backoff, require_image=require_image)
        except DownloadError as exc:
            if exc.status is not None:
                part_path(dest).unlink(missing_ok=True)
            return Outcome(url, dest, "dead", exc.reason, exc.status)
        except ValueError as exc:  # urllib: unknown url type / malformed URL
            return Outcome(url, dest, "dead", f"bad-url: {exc}", None)
        return Outcome(url, dest, "fetched")

    with get_console().progress(len(todo), progress) as task, ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(one, url, dest) for url, dest in todo]
        for future in as_completed(futures):
            outcomes.append(future.result())
            task.advance()
    return outcomes
