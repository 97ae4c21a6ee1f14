"""Atomic files: a reader sees the old file or the new one, never half of it.

Every file vvbench writes for someone else to read (run directories, parquet parts, progress
files, job chunks, WAV output) goes through `replacing`: the content is written to a temporary
name in the same folder (so the rename stays on one file system), optionally flushed to disk,
and renamed over the target; on an error the temporary file is removed and the target is left
as it was. `write_atomic` is the one-call form for bytes or text.

`durable=True` also fsyncs the file and its folder, so the new content survives a power loss or
`kill -9` right after the call (the job store needs that; run artifacts do not).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | Path, *, durable: bool = False, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it over `path` when the block succeeds.

    Write the new content to the yielded path (any writer: `open`, `pq.write_table`, `wave`).
    `mode` sets the file's permission bits (default: those of an existing target, else 0o644
    minus the umask as `open` would give).
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if mode is None:
            mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        if durable:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, data: bytes | str, *, durable: bool = False, encoding: str = "utf-8") -> Path:
    """Write `data` (bytes, or text in `encoding`) to `path` atomically; returns the path."""
    path = Path(path)
    with replacing(path, durable=durable) as tmp:
        tmp.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
    return path


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (a rename or a new file in it) to disk; a no-op where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race with other threads)."""
    try:
        with open("/proc/self/status") as f:
            line = next((x for x in f if x.startswith("Umask:")), None)
        if line is not None:
            return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022
