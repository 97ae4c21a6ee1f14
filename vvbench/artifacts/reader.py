"""`load_run`: the one way to read a run directory (reports, compare, the tuner and history use it).

`load_run(path)` checks `run.json` against `RunRecord` (upgrading an older schema, refusing a
newer one) and gives a `Run`: the record, and the request rows, samples and load-worker loop
ticks (`loop`, empty before schema 3) read on first use from their parquet files, checked
against their Arrow schemas. Every problem is an
`ArtifactError` of one line naming the file: a missing directory or `run.json`, JSON that does
not parse, a record that does not validate, a newer `schema_version`, a truncated or corrupt
parquet file, a file missing a column its schema requires. The CLI turns it into exit code 2.

`Run.replay(prebuffer_ms)` re-runs the playback model over each request's stored arrival
timeline at another prebuffer (the continuity of a run as a function of the listener's buffer);
at the run's own prebuffer it gives exactly the recorded `max_stall_s` and `underruns`.
`Run.stalls(prebuffer_ms)` lists where each stall happened (for a timeline). Both replay every
row at once (`vvbench.artifacts.playback.simulate_many`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ValidationError

from vvbench.artifacts import playback
from vvbench.artifacts.record import SCHEMA_VERSION, RunRecord, upgrade
from vvbench.artifacts.schemas import ARRIVAL_COLUMNS, read_parquet
from vvbench.core.errors import ArtifactError
from vvbench.core.validation import format_validation_error


@dataclass
class Run:
    """One run directory, read (see the module docstring)."""

    path: Path
    record: RunRecord
    version: int = SCHEMA_VERSION  # the schema the directory was written with (the record is upgraded)

    @cached_property
    def _requests_table(self) -> pa.Table:
        return read_parquet(self.path / "requests.parquet", self.version)

    @cached_property
    def requests(self) -> pd.DataFrame:
        """Every request row (warm-up and failed ones included), in start order."""
        return self._requests_table.to_pandas()

    @cached_property
    def samples(self) -> pd.DataFrame:
        """One row per sampling tick."""
        return read_parquet(self.path / "samples.parquet", self.version).to_pandas()

    @cached_property
    def loop(self) -> pd.DataFrame:
        """The load workers' event-loop ticks (`loop.parquet`; empty for runs before schema 3)."""
        return read_parquet(self.path / "loop.parquet", self.version).to_pandas()

    @property
    def has_arrivals(self) -> bool:
        """Whether the rows carry their arrival timelines (schema 2 on)."""
        return self.version >= 2

    @cached_property
    def arrivals(self) -> playback.Timelines:
        """Every row's arrival timeline, concatenated (`vvbench.artifacts.playback.Timelines`)."""
        if not self.has_arrivals:
            raise ArtifactError(f"{self.path}: schema {self.version} runs did not record arrival timelines; "
                                "playback cannot be re-simulated at another prebuffer")
        # straight from the Arrow list columns: their values are already one flat array each
        times, totals = (self._requests_table.column(c).combine_chunks() for c in ARRIVAL_COLUMNS)
        lengths = pc.fill_null(pc.list_value_length(times), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        return playback.Timelines.of(np.concatenate([[0], np.cumsum(lengths)]),
                                     pc.list_flatten(times).to_numpy(zero_copy_only=False),
                                     pc.list_flatten(totals).to_numpy(zero_copy_only=False),
                                     self.requests["sample_rate"].to_numpy(dtype=float, na_value=0.0))

    def _replayed(self, prebuffer_ms: float) -> playback.Replayed:
        starts = self.requests["ttfa_s"].to_numpy(dtype=float, na_value=np.nan) + prebuffer_ms / 1000.0
        return playback.simulate_many(self.arrivals, starts)

    def replay(self, prebuffer_ms: float) -> pd.DataFrame:
        """Per row: `max_stall_s`, `underruns`, `underrun_s` re-simulated at `prebuffer_ms` (NaN where it cannot be)."""
        r = self._replayed(prebuffer_ms)
        return pd.DataFrame({"max_stall_s": r.max_stall_s, "underruns": r.underruns, "underrun_s": r.underrun_s},
                            index=self.requests.index)

    def stalls(self, prebuffer_ms: float) -> pd.DataFrame:
        """One line per playback stall at `prebuffer_ms`: `row` (the request's index), `at_s` (since its t_start), `stall_s`."""
        r = self._replayed(prebuffer_ms)
        return pd.DataFrame({"row": self.requests.index.to_numpy()[self.arrivals.row[r.stall_piece]], "at_s": r.stall_at_s,
                             "stall_s": r.stall_s})


def load_run(path: str | Path) -> Run:
    """Read the run directory at `path` (see the module docstring); ArtifactError naming the file."""
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"{path}: no such run directory")
    record_path = path / "run.json"
    try:
        data = json.loads(record_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{record_path}: missing (not a run directory, or the run never finished writing)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{record_path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{record_path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{record_path}: expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise ArtifactError(f"{record_path}: schema_version {version} is newer than this vvbench reads "
                            f"({SCHEMA_VERSION}); upgrade vvbench to read it")
    try:
        record = RunRecord.model_validate(upgrade(data), context={"recorded": True})
    except ValidationError as exc:
        raise ArtifactError(format_validation_error(exc, str(record_path), model=RunRecord)) from None
    except ValueError as exc:
        raise ArtifactError(f"{record_path}: {exc}") from None
    return Run(path, record, version)
