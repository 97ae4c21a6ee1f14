"""`run.json` as a model: what one benchmark run was, how it ended, and its summary.

`RunRecord` is written by `vvbench.harness.run` and read by everything else through
`vvbench.artifacts.reader.load_run`. `schema_version` covers the whole run directory (run.json
and both parquet files): a reader accepts its own version, upgrades older ones (`upgrade`), and
refuses newer ones with one line, because a field it does not know may change a figure's
meaning.

Statuses (`RunStatus`): `ok` (the scenario ran to the end and every SLO was met), `slo_failed`
(it ran to the end and an SLO failed), `target_failed` (the target could not be started or
reached, or died during the run: `error` says why), `load_failed` (the load generator failed or
overran its time bound), `aborted` (interrupted, e.g. Ctrl-C). A run that did not finish keeps
the rows recorded until then.

Schema history: 1 had no arrival timeline in `requests.parquet`, statuses `error` /
`target_died` / `load_failed` / `overrun` / `interrupted`, and no percentile method in
`formulas`; reading a schema-1 run maps them onto today's. 2 had no row `clock`, no
`loop.parquet` and no `trust` (read as null: not watched). 3 had no response-format columns in
`requests.parquet` (read as nulls); run.json is unchanged.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from vvbench.artifacts.metrics import PERCENTILE_METHOD, RTF_FORMULA
from vvbench.artifacts.scenarios import Scenario

SCHEMA_VERSION = 4
RUN_FILES = ("run.json", "requests.parquet", "samples.parquet", "loop.parquet", "events.jsonl", "locust/", "summary.md", "report.html")


class RunStatus(str, enum.Enum):
    """How a run ended (see the module docstring)."""

    OK = "ok"
    SLO_FAILED = "slo_failed"
    TARGET_FAILED = "target_failed"
    LOAD_FAILED = "load_failed"
    ABORTED = "aborted"

    @property
    def completed(self) -> bool:
        """The scenario ran to its end (its figures describe the whole window)."""
        return self in (RunStatus.OK, RunStatus.SLO_FAILED)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tool(_Model):
    name: str = "vvbench"
    version: str


class GitFacts(_Model):
    sha: str | None = None
    dirty: bool | None = None


class LoadFacts(_Model):
    mode: str | None = Field(None, description="local, master + N local workers, or master (remote workers)")
    workers: int = 1
    locust_requests: dict[str, int] = Field(default_factory=dict, description="Locust's own request count per type")
    sample_hz: float


class Window(_Model):
    start_at: float | None = Field(None, description="epoch time the arrival schedule started (warm-up begins)")
    warmup_end: float | None = None
    window_end: float | None = Field(None, description="end of the measured window")


class Verdict(_Model):
    """One SLO judged against the summary."""

    slo: str
    metric: str
    op: str
    threshold: float
    value: float | None
    passed: bool


class Counts(_Model):
    rows: int
    warmup_rows: int
    failed_rows: int
    rows_match_locust: bool


class Stall(_Model):
    """A stretch during which a load worker's event loop did not run (see `Trust`)."""

    worker: str
    start: float = Field(description="epoch s: the earliest the stall can have begun")
    end: float = Field(description="epoch s: when the loop ran again")
    lag_s: float = Field(description="how late the worker's loop ticker woke")
    requests: list[str] = Field(default_factory=list, description="request_ids in flight on that worker during the stall")


class Trust(_Model):
    """Whether the load generator's own timing held during the run (`vvbench.reports.trust`).

    `trusted` is false when a worker's loop stalled longer than `threshold_s`: the run says so
    in its summary and report, naming the stalls and the requests that overlapped them. It does
    not change the run's status or exit code (the service did nothing wrong), but no figure of
    such a run is silently trusted.
    """

    threshold_s: float = Field(description="a loop lag over this is a stall")
    clocks: dict[str, int] = Field(default_factory=dict, description="rows per clock: kernel (arrival stamps) or read")
    loop_lag_p50_s: float | None = None
    loop_lag_p99_s: float | None = None
    loop_lag_max_s: float | None = None
    run_delay_share: float | None = Field(None, description="share of the run the loop thread waited for a CPU")
    stalls: list[Stall] = Field(default_factory=list)
    trusted: bool
    warnings: list[str] = Field(default_factory=list)


class Formulas(_Model):
    rtf: str = RTF_FORMULA
    percentile: str = PERCENTILE_METHOD


class RunRecord(_Model):
    """The content of `run.json` (see the module docstring)."""

    schema_version: int = SCHEMA_VERSION
    tool: Tool
    git: GitFacts
    run_id: str
    status: RunStatus
    error: str | None = Field(None, description="why the run did not complete (None when it did)")
    created_at: float
    finished_at: float
    host: dict[str, Any] = Field(description="host, CPU, memory, GPUs and versions (vvbench.harness.facts)")
    target: dict[str, Any] = Field(description="the target's own description (kind, url, pid, ...)")
    runtime_config: dict[str, Any] | None = Field(None, description="the service's resolved RuntimeConfig when known")
    scenario: Scenario
    load: LoadFacts
    window: Window
    metrics: list[dict[str, Any]] = Field(description="the metric definitions the summary was computed with")
    summary: dict[str, float | None]
    slos: list[Verdict]
    passed: bool = Field(description="the run completed and met every SLO")
    summary_counts: Counts
    notes: list[str] = Field(default_factory=list)
    trust: Trust | None = Field(None, description="the load generator's self-watch (None: runs before schema 3)")
    formulas: Formulas = Field(default_factory=Formulas)
    files: list[str] = Field(default_factory=lambda: list(RUN_FILES))


_V1_STATUS = {"error": RunStatus.TARGET_FAILED, "target_died": RunStatus.TARGET_FAILED, "load_failed": RunStatus.LOAD_FAILED,
              "overrun": RunStatus.LOAD_FAILED, "interrupted": RunStatus.ABORTED}


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A `run.json` mapping of an older schema -> today's fields (ValueError when it cannot be read)."""
    version = data.get("schema_version")
    if version == SCHEMA_VERSION:
        return data
    if version == 3:  # schema 4 added the response-format columns of requests.parquet only
        return {**data, "schema_version": SCHEMA_VERSION}
    if version == 2:  # schema 3 added `trust` (absent: the run did not watch its load workers) and loop.parquet
        return {**data, "schema_version": SCHEMA_VERSION}
    if version != 1:
        raise ValueError(f"unknown schema_version {version!r}")
    out = dict(data)
    status = out.get("status")
    if status == "ok":
        out["status"] = RunStatus.OK if out.get("passed") else RunStatus.SLO_FAILED
    else:
        out["status"] = _V1_STATUS.get(status, RunStatus.TARGET_FAILED)
    formulas = dict(out.get("formulas") or {})
    formulas.setdefault("percentile", PERCENTILE_METHOD)
    out["formulas"] = formulas
    out["schema_version"] = SCHEMA_VERSION
    return out
