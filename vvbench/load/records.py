"""Per-request rows: building a row from an Outcome, and writing them as parquet parts.

The columns are `vvbench.artifacts.schemas.REQUESTS` (DESIGN.md section 6's, then ours; see
that module). A row's playback figures (`max_stall_s`, `underruns`, `underrun_s`) come from the
playback model run over the same arrival timeline the row stores, so re-simulating a stored run
at its own prebuffer gives exactly its recorded stalls.

Rows are appended in memory and flushed as numbered parquet parts (`<prefix>-<n>.parquet`, each
checked against the schema and written atomically), so a run that dies keeps every row flushed
so far; `concat_parts` concatenates a directory of parts.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vvbench.artifacts.playback import simulate
from vvbench.artifacts.schemas import REQUESTS, write_parquet
from vvbench.load.client import Outcome
from vvbench.load.mix import RequestSpec


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
    facts = stream.facts if stream is not None else None
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
        "arrival_t_s": [a[0] for a in out.arrivals], "arrival_samples": [a[1] for a in out.arrivals],
        "clock": out.clock,
        "format": spec.response_format,
        "codec_priming_samples": (facts.priming_samples if facts.priming_samples is not None else out.codec_delay)
                                 if facts is not None else None,
        "codec_padding_samples": facts.padding_samples if facts is not None else None,
        "bitrate_bps": stream.bitrate_bps if stream is not None else math.nan,
    }


def to_table(rows: list[dict], schema: pa.Schema = REQUESTS) -> pa.Table:
    """Rows -> an Arrow table with `schema` (NaN stays NaN, None stays null)."""
    cols = {name: [r.get(name) for r in rows] for name in schema.names}
    return pa.Table.from_pydict(cols, schema=schema)


class RowRecorder:
    """Collects rows and flushes them as numbered parquet parts in `out_dir`.

    `take()` (on the thread that adds rows) hands over the pending rows with the path of their
    part, and `write(path, rows)` writes it anywhere — the load worker writes on a thread of its
    own, so that encoding and writing parquet never holds its event loop. `flush()` does both.
    """

    def __init__(self, out_dir: str | Path, prefix: str, schema: pa.Schema = REQUESTS):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.schema = schema
        self.pending: list[dict] = []
        self.parts = 0
        self.total = 0

    def add(self, row: dict) -> None:
        self.pending.append(row)
        self.total += 1

    def extend(self, rows: list[dict]) -> None:
        self.pending.extend(rows)
        self.total += len(rows)

    def take(self) -> tuple[Path, list[dict]] | None:
        """The pending rows and the path of the part they go to (None when there are none)."""
        if not self.pending:
            return None
        rows, self.pending = self.pending, []
        self.parts += 1
        return self.out_dir / f"{self.prefix}-{self.parts:05d}.parquet", rows

    def write(self, path: Path, rows: list[dict]) -> int:
        """Write one part taken with `take()`; returns how many rows it holds."""
        write_parquet(to_table(rows, self.schema), path, self.schema)
        return len(rows)

    def flush(self) -> int:
        """Write pending rows as the next part, here and now; returns how many were written."""
        taken = self.take()
        return self.write(*taken) if taken else 0


def concat_parts(parts_dir: str | Path, schema: pa.Schema = REQUESTS) -> pa.Table:
    """All parts in a directory as one table in time order (empty, with the schema, when none)."""
    files = sorted(Path(parts_dir).glob("*.parquet")) if Path(parts_dir).is_dir() else []
    tables = [pq.read_table(f, schema=schema) for f in files]
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    if schema is REQUESTS:
        return table.sort_by([("t_start", "ascending"), ("request_id", "ascending")])
    return table.sort_by([("t", "ascending"), ("worker", "ascending")])


def read_rows(parts_dir: str | Path) -> pd.DataFrame:
    """All parts in a directory as one DataFrame (see `concat_parts`)."""
    return concat_parts(parts_dir).to_pandas()
