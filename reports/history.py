"""The history index: every run in one SQLite file, trends per scenario and metric, change points.

`HistoryIndex(path)` opens an index (`create=True` makes one where there is none); `register`
adds a finished run from its `run.json` record: run id, scenario, start and end time, git SHA
(and whether the tree was dirty), a hash of the resolved runtime config, host, preset, status,
whether it passed, whether its load generator's timing held, the run directory's absolute path
and the summary metrics (one row per metric). Registering a run again replaces its rows. The
harness registers every run it finishes (`vvbench.harness.run`); `vvbench history --add`
registers run directories written elsewhere.

Where the index lives: `$VVBENCH_HISTORY_DB` when set, else `index.sqlite` in the runs root
(`runs/index.sqlite` by default, next to the run directories), so a runs folder carries its own
history; `--db` names another. The file says what it is in a `meta` table (`kind`,
`schema`): a file that is not SQLite, a SQLite file without that table, or an index of a newer
schema is refused with one line (`ArtifactError`, exit 2), and an existing database that is not
an index is never written into.

**Passing** (the baseline `compare --baseline latest-passing` picks): status `ok` — the run
completed and met every SLO — its load generator was not NOT TRUSTED, and the host was not busy
with other work while it measured (`compare.host_busy`: `host_other_cpu` within 10% of the
host's cores: compare refuses a contended run, so it must not become the baseline). `latest_passing`
takes the newest such run of the same scenario, preset and host as the run it is for (the
runs compare would refuse otherwise), started before it, whose directory still exists.

**Trends and change points**: a metric's series is its value in the completed runs (`ok`,
`slo_failed`) of one scenario, oldest first; runs without a value are left out. Change points
are Apache Otava's (`otava.analysis.compute_change_points`: E-divisive over sliding windows,
each split kept only when Student's t-test between the two sides gives p < `max_pvalue` *and*
the relative change of the mean exceeds `min_magnitude`, the two-condition rule). A change
point is named by the first run after the shift; whether it is worse or better follows from the
metric's direction in the metric table.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from vvbench.artifacts.metrics import METRICS
from vvbench.core.errors import ArtifactError
from vvbench.reports.compare import host_busy

INDEX_SCHEMA = 1
INDEX_KIND = "vvbench-history"
INDEX_NAME = "index.sqlite"
DB_ENV = "VVBENCH_HISTORY_DB"
MAX_PVALUE = 0.001
MIN_MAGNITUDE = 0.05
WINDOW_LEN = 30
COMPLETED = ("ok", "slo_failed")
TRENDED = tuple(m.name for m in METRICS if m.direction != "info")
_DIRECTION = {m.name: m.direction for m in METRICS}

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
  run_id TEXT PRIMARY KEY, scenario TEXT NOT NULL, created_at REAL NOT NULL, finished_at REAL,
  git_sha TEXT, git_dirty INTEGER, config_hash TEXT, host TEXT, preset TEXT, status TEXT NOT NULL,
  passed INTEGER NOT NULL, trusted INTEGER, path TEXT NOT NULL, registered_at REAL NOT NULL);
CREATE TABLE metrics (run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, name TEXT NOT NULL, value REAL,
  PRIMARY KEY (run_id, name));
CREATE INDEX runs_by_scenario ON runs (scenario, created_at);
"""


def default_db(runs_root: str | Path = "runs") -> Path:
    """The index a run under `runs_root` registers in: `$VVBENCH_HISTORY_DB`, else `<runs_root>/index.sqlite`."""
    env = os.environ.get(DB_ENV)
    return Path(env) if env else Path(runs_root) / INDEX_NAME


def config_hash(runtime_config: dict | None) -> str | None:
    """A short stable hash of a resolved runtime config (None when the run did not know it)."""
    if runtime_config is None:
        return None
    return hashlib.sha256(json.dumps(runtime_config, sort_keys=True, default=str).encode()).hexdigest()[:12]


@dataclass
class IndexedRun:
    """One run as the index holds it."""

    run_id: str
    scenario: str
    created_at: float
    finished_at: float | None
    git_sha: str | None
    git_dirty: bool | None
    config_hash: str | None
    host: str | None
    preset: str | None
    status: str
    passed: bool
    trusted: bool | None
    path: str
    metrics: dict[str, float | None] = field(default_factory=dict)


@dataclass
class Shift:
    """A change point in one metric's series: the run where the shift began and the levels either side."""

    metric: str
    run_id: str
    index: int  # position of that run in the metric's series
    created_at: float
    before: float  # mean of the segment before
    after: float  # mean of the segment from this run on
    change: float  # after / before - 1
    p_value: float
    worse: bool | None  # in the metric's bad direction (None: a metric without one)
    n_before: int
    n_after: int


class HistoryIndex:
    """A history index file (see the module docstring); a context manager closing its connection."""

    def __init__(self, path: str | Path, *, create: bool = False):
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise ArtifactError(f"{self.path}: no history index there (runs register in <runs root>/{INDEX_NAME}, "
                                f"or ${DB_ENV}; --db names another)")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path if create else f"file:{self.path}?mode=ro", uri=not create, timeout=30)
            self.conn.execute("PRAGMA foreign_keys = ON")
            self._check(create)
        except sqlite3.DatabaseError as exc:
            raise ArtifactError(f"{self.path}: not a vvbench history index ({exc})") from None

    def _check(self, create: bool) -> None:
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables and create:
            with self.conn:
                self.conn.executescript(_SCHEMA)
                self.conn.executemany("INSERT INTO meta VALUES (?, ?)", [("kind", INDEX_KIND), ("schema", str(INDEX_SCHEMA))])
            return
        meta = dict(self.conn.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
        if meta.get("kind") != INDEX_KIND:
            raise ArtifactError(f"{self.path}: not a vvbench history index (a SQLite database without its meta table)")
        schema = int(meta.get("schema", "0"))
        if schema > INDEX_SCHEMA:
            raise ArtifactError(f"{self.path}: history index schema {schema} is newer than this vvbench reads ({INDEX_SCHEMA}); "
                                "upgrade vvbench to read it")
        if schema != INDEX_SCHEMA:
            raise ArtifactError(f"{self.path}: history index schema {schema} is not one this vvbench reads ({INDEX_SCHEMA})")

    def __enter__(self) -> HistoryIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.conn.close()

    def register(self, run_dir: str | Path, record) -> None:
        """Add (or replace) the run whose `RunRecord` is `record`, written at `run_dir`."""
        preset = (record.runtime_config or {}).get("preset")
        row = (record.run_id, record.scenario.name, record.created_at, record.finished_at, record.git.sha,
               None if record.git.dirty is None else int(record.git.dirty), config_hash(record.runtime_config),
               record.host.get("hostname"), preset, record.status.value, int(record.passed),
               None if record.trust is None else int(record.trust.trusted), str(Path(run_dir).absolute()), time.time())
        values = [(record.run_id, name, _finite(v)) for name, v in record.summary.items()]
        with self.conn:
            self.conn.execute("DELETE FROM runs WHERE run_id = ?", (record.run_id,))
            self.conn.execute(f"INSERT INTO runs VALUES ({', '.join('?' * len(row))})", row)
            self.conn.executemany("INSERT INTO metrics VALUES (?, ?, ?)", values)

    def scenarios(self) -> list[str]:
        """The scenarios with at least one run, by name."""
        return [r[0] for r in self.conn.execute("SELECT DISTINCT scenario FROM runs ORDER BY scenario")]

    def runs(self, scenario: str | None = None, *, limit: int | None = None, completed: bool = False) -> list[IndexedRun]:
        """Runs oldest first (of one scenario; only `ok`/`slo_failed` ones when `completed`); `limit`: the newest N."""
        where, args = [], []
        if scenario is not None:
            where.append("scenario = ?")
            args.append(scenario)
        if completed:
            where.append(f"status IN ({', '.join('?' * len(COMPLETED))})")
            args.extend(COMPLETED)
        sql = "SELECT * FROM runs" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY created_at DESC, run_id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = list(self.conn.execute(sql, args))[::-1]
        return self._with_metrics([_indexed(r) for r in rows])

    def _with_metrics(self, runs: list[IndexedRun]) -> list[IndexedRun]:
        by_id = {r.run_id: r for r in runs}
        ids = list(by_id)
        for start in range(0, len(ids), 500):  # SQLite bounds the parameters of one statement
            chunk = ids[start:start + 500]
            for run_id, name, value in self.conn.execute(
                    f"SELECT run_id, name, value FROM metrics WHERE run_id IN ({', '.join('?' * len(chunk))})", chunk):
                by_id[run_id].metrics[name] = value
        return runs

    def latest_passing(self, scenario: str, *, preset: str | None = None, host: str | None = None,
                       before: float | None = None, exclude: str | None = None) -> IndexedRun | None:
        """The newest passing run of `scenario` (same preset and host when given, started before `before`) whose directory exists."""
        sql = "SELECT * FROM runs WHERE scenario = ? AND status = 'ok' AND (trusted IS NULL OR trusted = 1)"
        args: list = [scenario]
        for column, value in (("preset", preset), ("host", host)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        if before is not None:
            sql += " AND created_at < ?"
            args.append(before)
        if exclude is not None:
            sql += " AND run_id != ?"
            args.append(exclude)
        for row in self.conn.execute(sql + " ORDER BY created_at DESC", args):
            run = _indexed(row)
            if Path(run.path, "run.json").is_file():
                run = self._with_metrics([run])[0]
                if host_busy(run.metrics.get("host_other_cpu"), _cores(run.path)):
                    continue
                return run
        return None


def _cores(run_dir: str) -> int:
    """The CPU cores of the host a run directory was measured on (1 when unreadable)."""
    try:
        return int(json.loads(Path(run_dir, "run.json").read_text()).get("host", {}).get("cpu_count") or 1)
    except (OSError, ValueError, TypeError, AttributeError):
        return 1


def _finite(v) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def _indexed(row: tuple) -> IndexedRun:
    (run_id, scenario, created_at, finished_at, sha, dirty, chash, host, preset, status, passed, trusted, path, _) = row
    return IndexedRun(run_id, scenario, created_at, finished_at, sha, None if dirty is None else bool(dirty), chash, host, preset,
                      status, bool(passed), None if trusted is None else bool(trusted), path)


def register_run(db: str | Path, run_dir: str | Path, record) -> None:
    """Register one run in the index at `db`, creating the index where there is none."""
    with HistoryIndex(db, create=True) as index:
        index.register(run_dir, record)


def metric_series(runs: list[IndexedRun], metric: str) -> list[tuple[IndexedRun, float]]:
    """(run, value) of `metric` over `runs`, in their order, leaving out runs without a value."""
    return [(r, v) for r in runs if (v := r.metrics.get(metric)) is not None]


def change_points(runs: list[IndexedRun], metric: str, *, max_pvalue: float = MAX_PVALUE, min_magnitude: float = MIN_MAGNITUDE,
                  window_len: int = WINDOW_LEN) -> list[Shift]:
    """Otava's change points in `metric` over `runs` (oldest first), each named by the first run after it."""
    from otava.analysis import compute_change_points

    points = metric_series(runs, metric)
    if len(points) < 3:
        return []
    values = [v for _, v in points]
    found, _ = compute_change_points(values, window_len=window_len, max_pvalue=max_pvalue, min_magnitude=min_magnitude)
    direction = _DIRECTION.get(metric, "info")
    out, cuts = [], [0, *(int(cp.index) for cp in found), len(values)]
    for k, cp in enumerate(found):
        i = int(cp.index)
        change = float(cp.stats.forward_rel_change(value_if_nan=math.inf))
        worse = None if direction == "info" else (change > 0) == (direction == "lower")
        run = points[i][0]
        out.append(Shift(metric, run.run_id, i, run.created_at, float(cp.stats.mean_1), float(cp.stats.mean_2), change,
                         float(cp.stats.pvalue), worse, i - cuts[k], cuts[k + 2] - i))
    return out
