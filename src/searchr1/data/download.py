"""Search-R1's wiki-18 corpus and E5 flat index, fetched from the Hugging Face hub over plain HTTP.

What Search-R1's ``scripts/download.py`` + ``cat part_* > e5_Flat.index`` + ``gzip -d`` do, made
safe to run on a 60 GB download:

- every file is pinned in this module: a commit of its hub repository (never ``main``, which can
  move) and the sha256 and size Search-R1's published bytes have. The hub is asked first (HEAD) and
  a file whose reported size or sha256 differs from the pin is refused before the first byte is
  fetched; the whole job is checked against free disk space;
- downloads go to ``<name>.part`` and resume with an HTTP range request after an interruption;
- a finished file is verified (size, then the pinned sha256, never one the server sent) before it
  is renamed into place;
- the final ``wiki-18.jsonl`` and ``e5_Flat.index`` are written under temporary names and renamed,
  so an existing output is always complete and is never fetched again.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from searchr1.data.errors import DataError
from searchr1.data.files import atomic_path

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
CHUNK = 8 << 20
TIMEOUT_S = 60.0
RETRIES = 5
GUNZIP_RATIO = 3.0
"""Disk estimate for the unpacked corpus: wiki-18.jsonl is about 3x its gzip (5.1 GB -> ~14 GB)."""
_GIB = 1 << 30
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RemoteFile:
    repo: str
    """Hub dataset repository."""
    name: str
    """File in the repository; also its name on disk while downloading."""
    revision: str
    """Commit of the repository the file is fetched at."""
    size: int
    """Expected size in bytes."""
    sha256: str
    """Expected sha256 of the file's bytes."""


@dataclass(frozen=True)
class Artifact:
    output: str
    """Final file in the output directory."""
    parts: tuple[RemoteFile, ...]
    unpack: str
    """How parts become the output: gunzip (one part) or concat (in order)."""


# Pins as recorded by two independent downloads of these files (a verified download report and
# another project's asset manifest agree on every commit, size and sha256).
_CORPUS_REVISION = "69c1c00ffe7c5554c68d8548355cb22e46aabc51"
_E5_INDEX_REVISION = "a4d31160a035f30764604f4827cd8f1d0315eb86"
ARTIFACTS = {
    "corpus": Artifact(
        "wiki-18.jsonl",
        (
            RemoteFile(
                "PeterJinGo/wiki-18-corpus",
                "wiki-18.jsonl.gz",
                _CORPUS_REVISION,
                5_123_307_260,
                "7abd929223399cd63c52b499f289bf4f9039be1e9f8c43e1cb3938305b2317db",
            ),
        ),
        "gunzip",
    ),
    "e5-index": Artifact(
        "e5_Flat.index",
        (
            RemoteFile(
                "PeterJinGo/wiki-18-e5-index",
                "part_aa",
                _E5_INDEX_REVISION,
                42_949_672_960,
                "a8a6a246951da4bbc8771a223283ef61963882a32864d9044ec00abb90fc3023",
            ),
            RemoteFile(
                "PeterJinGo/wiki-18-e5-index",
                "part_ab",
                _E5_INDEX_REVISION,
                21_609_402_413,
                "b6d9bc943626fe7cb44de4c849e9379e7f272ab216c0552acbcf2390cc033c11",
            ),
        ),
        "concat",
    ),
}


@dataclass(frozen=True)
class Probe:
    url: str
    size: int
    sha256: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # The hub answers HEAD on /resolve/ with a redirect whose own headers carry the LFS size and
    # sha256 (X-Linked-Size / X-Linked-Etag); following it would lose them.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # urllib's hook
        return None


def file_url(endpoint: str, remote: RemoteFile) -> str:
    return f"{endpoint.rstrip('/')}/datasets/{remote.repo}/resolve/{remote.revision}/{remote.name}"


# --------------------------------------------------------------------------- probing
def probe(endpoint: str, remote: RemoteFile) -> Probe:
    """Ask the hub about ``remote`` without downloading it; refuse a file that is not the pinned one."""
    url = file_url(endpoint, remote)
    size, sha256 = _reported(url)
    if size is not None and size != remote.size:
        raise DataError(
            f"{url} reports {size} bytes but {remote.name} at revision {remote.revision[:12]} has "
            f"{remote.size}; refusing it (a different file, or a mirror serving other bytes)"
        )
    if sha256 is not None and sha256 != remote.sha256:
        raise DataError(f"{url} reports sha256 {sha256} but {remote.name} is pinned to {remote.sha256}; refusing it")
    return Probe(url, remote.size, remote.sha256)


def _reported(url: str) -> tuple[int | None, str | None]:
    """Size and (for LFS files) sha256 the server reports for ``url``."""
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=TIMEOUT_S) as response:
            headers = response.headers
    except urllib.error.HTTPError as exc:
        if exc.code not in (301, 302, 303, 307, 308):
            raise DataError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
        headers = exc.headers
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"cannot reach {url}: {_reason(exc)}") from None
    size = headers.get("X-Linked-Size") or headers.get("Content-Length")
    if size is None:  # a plain redirect: ask the final location
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=TIMEOUT_S) as response:
            size = response.headers.get("Content-Length")
    etag = (headers.get("X-Linked-Etag") or "").strip('"').removeprefix("W/").strip('"')
    return None if size is None else int(size), etag if _SHA256.fullmatch(etag) else None


def _reason(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "reason", exc)).split())


# --------------------------------------------------------------------------- disk space
def check_disk_space(out_dir: Path, plan: dict[str, dict[RemoteFile, Probe]]) -> None:
    """Fail before downloading when the downloads plus the unpacked outputs will not fit."""
    fetch = unpacked = 0
    for key, probes in plan.items():
        fetch += sum(p.size - _have(out_dir, remote) for remote, p in probes.items())
        total = sum(p.size for p in probes.values())
        unpacked += int(total * GUNZIP_RATIO) if ARTIFACTS[key].unpack == "gunzip" else total
    need, free = fetch + unpacked, shutil.disk_usage(out_dir).free
    if need > free:
        raise DataError(
            f"not enough disk space in {out_dir}: need about {need / _GIB:.1f} GiB (downloads "
            f"{fetch / _GIB:.1f} GiB + unpacked {unpacked / _GIB:.1f} GiB), {free / _GIB:.1f} GiB "
            f"free; free some space or pass another --out"
        )


def _have(out_dir: Path, remote: RemoteFile) -> int:
    done, part = out_dir / remote.name, out_dir / f"{remote.name}.part"
    return done.stat().st_size if done.is_file() else part.stat().st_size if part.is_file() else 0


# --------------------------------------------------------------------------- fetching
def fetch(remote: RemoteFile, found: Probe, out_dir: Path) -> Path:
    """Download (resuming any ``.part``), verify and rename into place; returns the file."""
    dest, part = out_dir / remote.name, out_dir / f"{remote.name}.part"
    if dest.is_file() and dest.stat().st_size == found.size:
        return dest
    for attempt in range(RETRIES + 1):
        try:
            _fetch_rest(found, part)
            break
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and exc.code != 429:
                raise DataError(f"cannot download {found.url}: HTTP {exc.code} {exc.reason}") from None
            error: BaseException = exc
        except (urllib.error.URLError, OSError) as exc:
            error = exc
        if attempt == RETRIES:
            raise DataError(
                f"download of {found.url} failed {RETRIES + 1} times ({_reason(error)}); "
                f"run the command again to resume from {part}"
            ) from None
        log.warning("%s: %s; resuming in %ds", remote.name, _reason(error), 2**attempt)
        time.sleep(2**attempt)
    _verify(part, found)
    os.replace(part, dest)
    return dest


def _fetch_rest(found: Probe, part: Path) -> None:
    have = part.stat().st_size if part.is_file() else 0
    if have > found.size:
        part.unlink()
        have = 0
    if have == found.size:
        return
    request = urllib.request.Request(found.url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        if have and response.status != 206:
            have = 0  # the server ignored the range: start over
        with open(part, "ab" if have else "wb") as handle:
            while chunk := response.read(CHUNK):
                handle.write(chunk)
    log.info("%s: %.2f GiB of %.2f GiB", part.name, part.stat().st_size / _GIB, found.size / _GIB)
    if part.stat().st_size < found.size:
        raise OSError(f"connection closed after {part.stat().st_size} of {found.size} bytes")


def _verify(path: Path, found: Probe) -> None:
    size = path.stat().st_size
    if size != found.size:
        path.unlink()
        raise DataError(f"{path} has {size} bytes, expected {found.size}; removed it, run the command again")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != found.sha256:
        path.unlink()
        raise DataError(f"{path} failed its sha256 check (expected {found.sha256}); removed it, run the command again")


# --------------------------------------------------------------------------- unpacking
def unpack(artifact: Artifact, parts: Sequence[Path], out_dir: Path) -> Path:
    """Gunzip or concatenate the parts into the output (atomically), then delete the parts."""
    output = out_dir / artifact.output
    try:
        with atomic_path(output) as tmp, open(tmp, "wb") as sink:
            for part in parts:
                opener = gzip.open if artifact.unpack == "gunzip" else open
                with opener(part, "rb") as source:
                    shutil.copyfileobj(source, sink, CHUNK)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot unpack {parts[0]}: {_reason(exc)}; delete it and run the command again") from None
    for part in parts:
        part.unlink()
    return output


def download(out_dir: Path, *, what: Sequence[str] = tuple(ARTIFACTS), endpoint: str | None = None) -> list[Path]:
    """Fetch the named artifacts into ``out_dir``; returns their final paths."""
    unknown = [key for key in what if key not in ARTIFACTS]
    if unknown:
        raise DataError(f"unknown artifact(s) {', '.join(unknown)}; allowed: {', '.join(ARTIFACTS)}")
    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    todo = [key for key in what if not (out_dir / ARTIFACTS[key].output).is_file()]
    plan = {key: {r: probe(endpoint, r) for r in ARTIFACTS[key].parts} for key in todo}
    check_disk_space(out_dir, plan)
    for key in todo:
        parts = [fetch(remote, found, out_dir) for remote, found in plan[key].items()]
        log.info("%s: unpacking into %s", key, ARTIFACTS[key].output)
        unpack(ARTIFACTS[key], parts, out_dir)
    return [out_dir / ARTIFACTS[key].output for key in what]
