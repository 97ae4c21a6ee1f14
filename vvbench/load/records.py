"""Per-request rows: the columns, building a row from an Outcome, and writing them as parquet parts.

The columns are DESIGN.md section 6's, in its order, then ours: `api` (speech or job), `warmup`
(excluded from statistics), `t_scheduled` and `lag_s` (open loop: when the request was due and
how late it left, NaN for closed-loop users), `headers_s` (time to response headers),
`server_queue_s` (the queue entry of `Server-Timing`, when the server sends one), `sample_rate`,
`playback_start_s`, `index` (the request's index in the mix). Failed requests keep their row:
`status` is one of STATUSES, only `ok` rows enter latency statistics.

Rows are appended in memory and flushed as numbered parquet parts (`<prefix>-<n>.parquet`, each
written to a temp name and renamed), so a run that dies keeps every row flushed so far;
`read_rows` concatenates a directory of parts.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vvbench.load.client import Outcome
from vvbench.load.mix import RequestSpec
from vvbench.load.playback import simulate

STATUSES = ("ok", "rejected", "http_error", "connect_error", "timeout", "truncated", "bad_audio",
            "stream_error", "no_audio", "job_failed", "cancelled", "client_error")

SCHEMA = pa.schema([
    ("request_id", pa.string()), ("cls", pa.string()), ("worker", pa.string()),
    ("t_start", pa.float64()), ("ttfb_s", pa.float64()), ("ttfa_s", pa.float64()), ("e2e_s", pa.float64()),
    ("audio_s", pa.float64()), ("rtf", pa.float64()), ("chunks", pa.int64()), ("max_stall_s", pa.float64()),
    ("underruns", pa.int64()), ("underrun_s", pa.float64()), ("text_chars", pa.int64()), ("voice", pa.string()),
    ("seed", pa.int64()), ("status", pa.string()), ("http_status", pa.int64()), ("error", pa.string()),
    ("bytes", pa.int64()), ("audio_md5", pa.string()),
    ("api", pa.string()), ("warmup", pa.bool_()), ("t_scheduled", pa.float64()), ("lag_s", pa.float64()),
    ("headers_s", pa.float64()), ("server_queue_s", pa.float64()), ("sample_rate", pa.int64()),
    ("playback_start_s", pa.float64()), ("index", pa.int64()),
])
COLUMNS = tuple(SCHEMA.names)


def build_row(spec: RequestSpec, out: Outcome, *, worker: str, prebuffer_ms: float, warmup: bool,
              t_scheduled: float | None = None) -> dict:
    """One row from a request's spec and outcome, with the playback model applied."""
    stream = out.stream
    rate = stream.sample_rate if stream is not None else 0
    audio_s = stream.audio_s if stream is not None else 0.0
    ok = out.status == "ok"
    start = out.ttfa_s + prebuffer_ms / 1000.0 if not math.isnan(out.ttfa_s) else None
    play = simulate(out.arrivals, rate, start)
    e2e = out.e2e_s
    return {
        "request_id": f"{worker}-{spec.index}", "cls": spec.cls, "worker": worker,
        "t_start": out.t_start, "ttfb_s": out.ttfb_s, "ttfa_s": out.ttfa_s, "e2e_s": e2e,
        "audio_s": audio_s, "rtf": e2e / audio_s if ok and audio_s > 0 else math.nan,
        "chunks": out.chunks, "max_stall_s": play.max_stall_s, "underruns": play.underruns, "underrun_s": play.underrun_s,
        "text_chars": len(spec.text), "voice": spec.voice, "seed": out.seed if out.seed is not None else spec.seed,
        "status": out.status, "http_status": out.http_status, "error": out.error, "bytes": out.bytes,
        "audio_md5": stream.md5 if stream is not None and stream.pcm_bytes else None,
        "api": spec.api, "warmup": warmup, "t_scheduled": math.nan if t_scheduled is None else t_scheduled,
        "lag_s": math.nan if t_scheduled is None else out.t_start - t_scheduled,
        "headers_s": out.headers_s, "server_queue_s": out.server_queue_s, "sample_rate": rate,
        "playback_start_s": play.start_s, "index": spec.index,
    }


def to_table(rows: list[dict]) -> pa.Table:
    """Rows -> an Arrow table with the fixed schema (NaN stays NaN, None stays null)."""
    cols = {name: [r.get(name) for r in rows] for name in COLUMNS}
    return pa.Table.from_pydict(cols, schema=SCHEMA)


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write a parquet file under a temp name, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


class RowRecorder:
    """Collects rows and flushes them as numbered parquet parts in `out_dir`."""

    def __init__(self, out_dir: str | Path, prefix: str):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.pending: list[dict] = []
        self.parts = 0
        self.total = 0

    def add(self, row: dict) -> None:
        self.pending.append(row)
        self.total += 1

    def flush(self) -> int:
        """Write pending rows as the next part; returns how many were written."""
        if not self.pending:
            return 0
        rows, self.pending = self.pending, []
        self.parts += 1
        write_atomic(to_table(rows), self.out_dir / f"{self.prefix}-{self.parts:05d}.parquet")
        return len(rows)


def concat_parts(parts_dir: str | Path) -> pa.Table:
    """All parts in a directory as one table sorted by start time (empty, with the schema, when none)."""
    files = sorted(Path(parts_dir).glob("*.parquet")) if Path(parts_dir).is_dir() else []
    tables = [pq.read_table(f, schema=SCHEMA) for f in files]
    table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    return table.sort_by([("t_start", "ascending"), ("request_id", "ascending")])


def read_rows(parts_dir: str | Path) -> pd.DataFrame:
    """All parts in a directory as one DataFrame (see `concat_parts`)."""
    return concat_parts(parts_dir).to_pandas()
