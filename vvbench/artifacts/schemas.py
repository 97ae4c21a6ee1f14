"""Arrow schemas of `requests.parquet` and `samples.parquet`, checked on write and on read.

`requests.parquet` has DESIGN.md section 6's columns in its order, then ours: `api` (speech or
job), `warmup` (excluded from statistics), `t_scheduled` and `lag_s` (open loop: when the request
was due and how late it left, NaN for closed-loop users), `headers_s` (time to response headers),
`server_queue_s` (the queue entry of `Server-Timing`), `sample_rate`, `playback_start_s`, `index`
(the request's index in the mix), and the arrival timeline: `arrival_t_s` (seconds since
`t_start` at which each piece of audio arrived) and `arrival_samples` (samples received in total
by then), two lists of equal length per row — so the playback model can be re-run offline at
any prebuffer (`vvbench.artifacts.playback.simulate`), and gives exactly the row's recorded stalls at
the run's own. Failed requests keep their row: `status` is one of `REQUEST_STATUSES`.

A row's `clock` says what its times are: `kernel` (the kernel's arrival stamps of the answer's
bytes) or `read` (when the load worker read them); null in runs of schema 2 and older.

Schema 4 adds the response format: `format` (the `response_format` asked for: mp3, opus, aac,
flac, wav or pcm), `codec_priming_samples` and `codec_padding_samples` (what the body declared,
in decoded samples: Opus' pre-skip from OpusHead, an mp3's LAME encoder delay and padding; where
the body declares no priming, as ADTS AAC and streamed mp3 without a LAME frame, the priming is the
answer's `X-Codec-Delay` header when it has one (`vvbench serve` sends it for mp3 and aac), else
null, as for wav/pcm) and
`bitrate_bps` (encoded bits received per second of decoded audio, container included; NaN
without audio). `audio_md5` of a compressed answer is of its decoded signal as 16-bit
little-endian PCM, and `sample_rate` its decoded rate (48 kHz for Opus). Runs of schema 3 and
older read these columns as nulls.

`samples.parquet` has one row per sampling tick: `t` (epoch seconds, the requests' clock), every
sampler's columns (all numbers in base units, null where the source was NA) and `sample_cpu_s`.

`loop.parquet` (schema 3 on) is the load workers watching themselves (`vvbench.load.selfwatch`):
one row per event-loop tick of each worker, `t` (epoch of the wake), `worker`, `lag_s` (how late
the tick woke), `tick_s`, `run_delay_s` (the loop thread's wait for a CPU during the tick, NaN
where unknown) and `cpu_s` (the worker process's CPU time during the tick).

Checks: on write, a table must have exactly the schema's columns (missing sample columns are
added as nulls: not every run has every sampler) with types that cast without loss; on read, a
file must hold every column its schema version defines. Files of schema 1 (no arrival timeline)
are upgraded on read: the arrival columns are added as nulls, and `vvbench.artifacts.reader`
says that playback cannot be re-simulated for them. Schema 2 files get a null `clock`, and
runs before schema 3 read an empty `loop.parquet` (they did not watch their loop).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vvbench.core.errors import ArtifactError
from vvbench.core.files import replacing

REQUEST_STATUSES = ("ok", "rejected", "http_error", "connect_error", "timeout", "truncated", "bad_audio",
                    "stream_error", "no_audio", "job_failed", "cancelled", "client_error")

ARRIVAL_COLUMNS = ("arrival_t_s", "arrival_samples")

REQUESTS = pa.schema([
    ("request_id", pa.string()), ("cls", pa.string()), ("worker", pa.string()),
    ("t_start", pa.float64()), ("ttfb_s", pa.float64()), ("ttfa_s", pa.float64()), ("e2e_s", pa.float64()),
    ("audio_s", pa.float64()), ("rtf", pa.float64()), ("chunks", pa.int64()), ("max_stall_s", pa.float64()),
    ("underruns", pa.int64()), ("underrun_s", pa.float64()), ("text_chars", pa.int64()), ("voice", pa.string()),
    ("seed", pa.int64()), ("status", pa.string()), ("http_status", pa.int64()), ("error", pa.string()),
    ("bytes", pa.int64()), ("audio_md5", pa.string()),
    ("api", pa.string()), ("warmup", pa.bool_()), ("t_scheduled", pa.float64()), ("lag_s", pa.float64()),
    ("headers_s", pa.float64()), ("server_queue_s", pa.float64()), ("sample_rate", pa.int64()),
    ("playback_start_s", pa.float64()), ("index", pa.int64()),
    ("arrival_t_s", pa.list_(pa.float64())), ("arrival_samples", pa.list_(pa.int64())),
    ("clock", pa.string()),
    ("format", pa.string()), ("codec_priming_samples", pa.int64()), ("codec_padding_samples", pa.int64()),
    ("bitrate_bps", pa.float64()),
])
REQUEST_COLUMNS = tuple(REQUESTS.names)

_SAMPLE_COLUMNS = (
    # process tree (psutil), system CPU
    "rss_bytes", "cpu_percent", "procs", "sys_cpu_idle", "sys_cpu_iowait", "host_other_cpu",
    # NVML
    "gpu_count", "gpu_mem_used_bytes", "gpu_mem_total_bytes", "gpu_util_pct", "gpu_proc_mem_bytes",
    # the service's /v1/stats
    "queue_depth", "active_streams", "kv_cache_bytes", "conv_cache_bytes", "leak_bytes",
    "cuda_allocated_bytes", "cuda_reserved_bytes", "stalled_s",
)
SAMPLES = pa.schema([("t", pa.float64()), *((c, pa.float64()) for c in _SAMPLE_COLUMNS), ("sample_cpu_s", pa.float64())])
SAMPLE_COLUMNS = tuple(SAMPLES.names)

LOOP = pa.schema([("t", pa.float64()), ("worker", pa.string()), ("lag_s", pa.float64()), ("tick_s", pa.float64()),
                  ("run_delay_s", pa.float64()), ("cpu_s", pa.float64())])
LOOP_COLUMNS = tuple(LOOP.names)

# what each schema version's files hold (older versions are upgraded on read; None: the file did not exist)
FORMAT_COLUMNS = ("format", "codec_priming_samples", "codec_padding_samples", "bitrate_bps")
_V3_REQUESTS = [c for c in REQUEST_COLUMNS if c not in FORMAT_COLUMNS]
_V2_REQUESTS = [c for c in _V3_REQUESTS if c != "clock"]
_REQUIRED: dict[int, dict[str, list[str] | None]] = {
    1: {"requests.parquet": [c for c in _V2_REQUESTS if c not in ARRIVAL_COLUMNS], "samples.parquet": ["t"], "loop.parquet": None},
    2: {"requests.parquet": _V2_REQUESTS, "samples.parquet": ["t"], "loop.parquet": None},
    3: {"requests.parquet": _V3_REQUESTS, "samples.parquet": ["t"], "loop.parquet": list(LOOP_COLUMNS)},
    4: {"requests.parquet": list(REQUEST_COLUMNS), "samples.parquet": ["t"], "loop.parquet": list(LOOP_COLUMNS)},
}
_SCHEMAS = {"requests.parquet": REQUESTS, "samples.parquet": SAMPLES, "loop.parquet": LOOP}


def conform(table: pa.Table, schema: pa.Schema, name: str) -> pa.Table:
    """`table` with exactly `schema` (column order and types); ArtifactError naming what is wrong.

    For the samples schema, missing columns are added as nulls; for the requests schema every
    column must be there. Unknown columns are an error either way (a writer out of step with the
    contract is a bug to fix, not data to keep silently).
    """
    unknown = [c for c in table.column_names if c not in schema.names]
    if unknown:
        raise ArtifactError(f"{name}: columns not in the schema: {', '.join(unknown)}")
    missing = [c for c in schema.names if c not in table.column_names]
    if missing and schema is REQUESTS:
        raise ArtifactError(f"{name}: missing columns: {', '.join(missing)}")
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            try:
                column = column.cast(field.type, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ArtifactError(f"{name}: column {field.name}: {column.type} does not fit {field.type} ({exc})") from None
        else:
            column = pa.nulls(len(table), field.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def write_parquet(table: pa.Table, path: str | Path, schema: pa.Schema) -> Path:
    """Check `table` against `schema` and write it atomically as parquet."""
    path = Path(path)
    checked = conform(table, schema, path.name)
    with replacing(path) as tmp:
        pq.write_table(checked, tmp)
    return path


def read_parquet(path: str | Path, version: int) -> pa.Table:
    """Read `requests.parquet` or `samples.parquet` of a run of schema `version`, upgraded to the current schema.

    ArtifactError naming the file when it is missing, truncated, corrupt or lacks a column.
    """
    path = Path(path)
    schema = _SCHEMAS[path.name]
    required = _REQUIRED[version][path.name]
    if required is None:  # a file that runs of this schema did not write: empty
        return schema.empty_table()
    if not path.is_file():
        raise ArtifactError(f"{path}: missing")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ArtifactError(f"{path}: not a readable parquet file ({' '.join(str(exc).split())[:160]})") from None
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise ArtifactError(f"{path}: missing columns for schema {version}: {', '.join(missing)}")
    extra = [c for c in table.column_names if c not in schema.names]
    if extra:
        table = table.drop_columns(extra)
    for field in schema:
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(len(table), field.type))
    return conform(table.select(schema.names), schema, str(path))
