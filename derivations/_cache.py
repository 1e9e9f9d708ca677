"""On-disk cache of derived systems.

Entries live in ``$NCDYN_CACHE_DIR`` (default ``$XDG_CACHE_HOME/ncdyn`` or ``~/.cache/ncdyn``),
one file per key. The key covers the spec, the package version and a hash of the derivation
source, so an entry written by other derivation code is stale and ignored. Each file holds a
header, the key and a SHA-256 of the payload; a corrupt, truncated or stale entry is never
trusted: it is re-derived and replaced. Writes are atomic (temporary file + os.replace), so
concurrent writers leave one complete entry.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "cache_key", "load_cached", "store_cached", "clear_cache"]

_MAGIC = b"NCDYN-CACHE-1\n"


def cache_dir() -> Path:
    """The cache directory (not created until something is stored).

    ``$NCDYN_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/ncdyn`` or ``~/.cache/ncdyn``.

    Returns
    -------
    pathlib.Path
        The directory derived systems are pickled to.
    """
    env = os.environ.get("NCDYN_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ncdyn"


def _source_hash() -> str:
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):  # every module a cached system depends on
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


def cache_key(spec: Any, version: str) -> str:
    """A string naming ``spec`` under this package version and derivation source."""
    fields = ",".join(f"{k}={v}" for k, v in sorted(vars(spec).items()))
    return f"{type(spec).__name__}({fields})|ncdyn={version}|src={_source_hash()}"


def _path(key: str) -> Path:
    return cache_dir() / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".pkl")


def load_cached(key: str) -> Any | None:
    """The object stored under ``key``, or None if absent, stale or corrupt."""
    path = _path(key)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        if not data.startswith(_MAGIC):
            return None
        header, digest, payload = data[len(_MAGIC):].split(b"\n", 2)
        if header.decode() != key or hashlib.sha256(payload).hexdigest().encode() != digest:
            return None
        return pickle.loads(payload)
    except Exception:  # any damage means: derive again
        return None


def store_cached(key: str, obj: Any) -> Path | None:
    """Store ``obj`` under ``key`` atomically; returns the path, or None if not writable."""
    path = _path(key)
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    blob = _MAGIC + key.encode() + b"\n" + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pkl")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError:
        return None
    return path


def clear_cache() -> int:
    """Delete every cache entry.

    Returns
    -------
    int
        How many files were removed.
    """
    n = 0
    for f in cache_dir().glob("*.pkl"):
        f.unlink(missing_ok=True)
        n += 1
    return n
