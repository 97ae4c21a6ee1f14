"""The run directory (DESIGN.md section 10): built aside, every file atomic, then renamed into place.

`runs/<UTC time>-<scenario>-<id>/` holds `run.json`, `requests.parquet`, `samples.parquet`,
`loop.parquet`, `events.jsonl`, `locust/`, `summary.md`, `report.html`, and `target/` (an embedded or command
target's stdout/stderr). While the run goes, it lives in `runs/.<name>.partial/` (with the load
processes' scratch space in `.work/`); `finalize()` removes the scratch and renames the
directory, so a finished run directory is never half-written. A run that fails after its
directory exists is still finalized (with `status` saying why), keeping the rows it recorded.
Its files are checked on the way in: `run.json` is a `RunRecord`, the parquet files conform to
their Arrow schemas (`vvbench.artifacts.schemas`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from vvbench.artifacts.record import RunRecord
from vvbench.artifacts.schemas import LOOP, REQUESTS, SAMPLES, write_parquet
from vvbench.core.files import write_atomic

if TYPE_CHECKING:
    import pyarrow as pa


class RunDir:
    """A run directory being written (see the module docstring)."""

    def __init__(self, out_root: str | Path, scenario: str):
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.run_id = uuid.uuid4().hex[:6]
        self.name = f"{stamp}-{scenario}-{self.run_id}"
        self.root = Path(out_root)
        self.final = self.root / self.name
        self.path = self.root / f".{self.name}.partial"
        self.path.mkdir(parents=True)
        self.work = self.path / ".work"
        self._events = open(self.path / "events.jsonl", "a", buffering=1)

    def event(self, event: str, /, **data) -> None:
        """Append one event (epoch time, name, details) to events.jsonl."""
        if not self._events.closed:
            self._events.write(json.dumps({"t": time.time(), "event": event, **data}, default=str) + "\n")

    def write_text(self, name: str, text: str) -> Path:
        """A text file of the run (summary.md, report.html), written atomically."""
        return write_atomic(self.path / name, text)

    def write_record(self, record: RunRecord) -> Path:
        """run.json."""
        return self.write_text("run.json", record.model_dump_json(indent=2) + "\n")

    def write_requests(self, table: pa.Table) -> Path:
        """requests.parquet, checked against the requests schema."""
        return write_parquet(table, self.path / "requests.parquet", REQUESTS)

    def write_samples(self, table: pa.Table) -> Path:
        """samples.parquet, checked against the samples schema (missing sampler columns become nulls)."""
        return write_parquet(table, self.path / "samples.parquet", SAMPLES)

    def write_loop(self, table: pa.Table) -> Path:
        """loop.parquet (the load workers' self-watch), checked against its schema."""
        return write_parquet(table, self.path / "loop.parquet", LOOP)

    def adopt(self, src: Path, name: str) -> None:
        """Move a directory produced elsewhere (Locust's CSV) into the run directory."""
        if src.is_dir():
            dest = self.path / name
            dest.mkdir(exist_ok=True)
            for f in src.iterdir():
                os.replace(f, dest / f.name)

    def discard(self) -> None:
        """Remove the directory of a run that never started."""
        self._events.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def finalize(self) -> Path:
        """Drop the scratch space and rename the directory into place."""
        self._events.close()
        shutil.rmtree(self.work, ignore_errors=True)
        os.replace(self.path, self.final)
        return self.final
