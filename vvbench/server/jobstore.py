"""Long-form jobs on disk: one SQLite database (stdlib sqlite3, WAL) and one file per audio chunk.

Layout under the data directory: `jobs.db`, and `jobs/<job id>/<index>.pcm` holding raw 16-bit
little-endian mono samples (the WAV header is added when a chunk is served).

Durability: a chunk file is written to a temporary name, fsynced and renamed, and its directory
fsynced (`vvbench.core.files.write_atomic(durable=True)`), before the database records it, in one
transaction that also advances the job's counters (and marks it done with its last chunk). The
database runs with `synchronous=FULL`, so an accepted job (HTTP 202) and every recorded chunk
survive a `kill -9` or a power cut. A file that exists
without its database row (killed between rename and commit) is simply written again on resume.

Space: a deleted job's rows are given back at once (`auto_vacuum=INCREMENTAL` and a truncating
WAL checkpoint on delete), and the WAL never stays above `WAL_LIMIT_BYTES` after a checkpoint,
so deleting jobs returns the store's files to their size before them.

Every job's chunks are a fixed `chunk_frames` long except its last, so the frames already
persisted are `chunks_ready * chunk_frames` and a resumed request restarts exactly at a chunk
boundary. Access is thread-safe (one connection behind a lock): the event loop reads, worker
threads write chunks.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from vvbench.core.files import write_atomic
from vvbench.server.schemas import JobState

SCHEMA_VERSION = 1
# The WAL is truncated to this after a checkpoint (SQLite otherwise keeps it at its high-water
# mark: ~4 MB once the default auto-checkpoint has run).
WAL_LIMIT_BYTES = 1 << 20
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    model TEXT,
    input TEXT NOT NULL,
    voice TEXT NOT NULL,
    speed REAL NOT NULL,
    seed INTEGER NOT NULL,
    response_format TEXT NOT NULL,
    diffusion_steps INTEGER,
    cfg_scale REAL,
    n_frames INTEGER NOT NULL,
    samples_per_frame INTEGER NOT NULL,
    chunk_frames INTEGER NOT NULL,
    chunks_ready INTEGER NOT NULL DEFAULT 0,
    frames_done INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    error TEXT,
    fingerprint TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, created_at);
"""


@dataclass
class JobRecord:
    """One row of the jobs table: the request as resolved at creation, and its progress."""

    id: str
    state: str
    model: str | None
    input: str
    voice: str
    speed: float
    seed: int
    response_format: str
    diffusion_steps: int | None
    cfg_scale: float | None
    n_frames: int
    samples_per_frame: int
    chunk_frames: int
    created_at: float
    updated_at: float
    fingerprint: str
    chunks_ready: int = 0
    frames_done: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None

    @property
    def chunks_total(self) -> int:
        return -(-self.n_frames // self.chunk_frames)

    @property
    def job_state(self) -> JobState:
        return JobState(self.state)


_COLUMNS = [f.name for f in fields(JobRecord)]


class JobStore:
    """The jobs database and chunk files under one data directory (see the module docstring)."""

    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir)
        self.chunk_root = self.root / "jobs"
        self.chunk_root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / "jobs.db", check_same_thread=False, isolation_level=None)
        # Before any table exists, so a new database can give deleted jobs' pages back.
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
        self._db.executescript(_SCHEMA)
        if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            self._db.execute("VACUUM")  # a database made before auto_vacuum: converted once
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- rows -----------------------------------------------------------------------------
    def create(self, rec: JobRecord) -> None:
        """Insert a new job (committed and synced before this returns)."""
        row = asdict(rec)
        with self._lock:
            self._db.execute(f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                             [row[c] for c in _COLUMNS])

    def _select(self, where: str, args: tuple = (), tail: str = "") -> list[JobRecord]:
        with self._lock:
            cur = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE {where} {tail}", args)
            return [JobRecord(**dict(zip(_COLUMNS, row))) for row in cur.fetchall()]

    def get(self, job_id: str) -> JobRecord | None:
        rows = self._select("id = ?", (job_id,))
        return rows[0] if rows else None

    def recent(self, limit: int) -> list[JobRecord]:
        return self._select("1 = 1", (), f"ORDER BY created_at DESC LIMIT {int(limit)}")

    def unfinished(self) -> list[JobRecord]:
        """Queued and running jobs, oldest first (the order they resume in)."""
        return self._select("state IN ('queued', 'running')", (), "ORDER BY created_at, id")

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        out = {s.value: 0 for s in JobState}
        out.update({state: n for state, n in rows})
        return out

    def set_state(self, job_id: str, state: JobState, *, error: str | None = None) -> None:
        now = time.time()
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET state = ?, error = ?, updated_at = ?,"
                " started_at = CASE WHEN ? = 'running' AND started_at IS NULL THEN ? ELSE started_at END,"
                " finished_at = CASE WHEN ? IN ('done', 'failed', 'cancelled') THEN ? ELSE finished_at END"
                " WHERE id = ?",
                (state.value, error, now, state.value, now, state.value, now, job_id))

    def requeue_running(self) -> int:
        """At start-up: jobs left running by the previous process go back to queued."""
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET state = 'queued', updated_at = ? WHERE state = 'running'", (time.time(),))
            return cur.rowcount

    def delete(self, job_id: str) -> None:
        """Remove the job's row and give its pages back (database and WAL), then its chunk files."""
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            # executescript runs the pragma to completion (execute() frees one page per call).
            self._db.executescript("PRAGMA incremental_vacuum;")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        shutil.rmtree(self.chunk_root / job_id, ignore_errors=True)

    # -- chunks ---------------------------------------------------------------------------
    def chunk_path(self, job_id: str, index: int) -> Path:
        return self.chunk_root / job_id / f"{index:06d}.pcm"

    def add_chunk(self, job_id: str, index: int, frames: int, pcm: bytes, *, final: bool) -> bool:
        """Persist chunk `index` (temp file, fsync, rename), then record it; False if it is not the next
        chunk of an unfinished job (deleted meanwhile, or a stale writer), and then no file is touched."""
        if not self._expects(job_id, index):
            return False
        path = self.chunk_path(job_id, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, pcm, durable=True)
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET chunks_ready = ? + 1, frames_done = frames_done + ?, updated_at = ?,"
                " state = CASE WHEN ? THEN 'done' ELSE state END,"
                " finished_at = CASE WHEN ? THEN ? ELSE finished_at END"
                " WHERE id = ? AND chunks_ready = ? AND state IN ('queued', 'running')",
                (index, frames, now, final, final, now, job_id, index))
            recorded = cur.rowcount == 1
        if not recorded and self.get(job_id) is None:  # deleted while we wrote: leave nothing behind
            shutil.rmtree(path.parent, ignore_errors=True)
        return recorded

    def _expects(self, job_id: str, index: int) -> bool:
        with self._lock:
            row = self._db.execute("SELECT chunks_ready, state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row is not None and row[0] == index and row[1] in ("queued", "running")

    def read_chunk(self, job_id: str, index: int) -> bytes:
        return self.chunk_path(job_id, index).read_bytes()

    def chunk_sizes(self, job_id: str, count: int) -> list[int]:
        return [self.chunk_path(job_id, i).stat().st_size for i in range(count)]


def config_fingerprint(config) -> str:
    """The restart-only knobs that decide a job's exact audio (a resume should run with the same)."""
    keys = ("preset", "weights_seed", "dtype", "device", "max_batch", "batch_invariant", "offload", "offload_mode")
    return json.dumps({k: getattr(config, k) for k in keys}, sort_keys=True, default=str)
