"""The `synth`, `plan` and `serve` commands: the reference runtime and its service.

Thin: flags (every RuntimeConfig knob, see `vvbench.cli.knobs`) -> a RuntimeConfig -> the
runtime or the service. Only these commands (and `run`/`demo`, for the embedded target's
config) import the runtime package, with its process-wide MKL pin.
"""

from __future__ import annotations

import json
import logging

import click
from rich.console import Console
from rich.table import Table

from vvbench.cli.knobs import knob_options, overrides_from_flags
from vvbench.runtime.presets import PRESETS

console = Console(stderr=False)


def _config(config_path: str | None, preset: str | None, kwargs: dict):
    from vvbench.runtime.config import load_runtime_config

    overrides = overrides_from_flags(kwargs)
    if preset is not None:
        overrides["preset"] = preset
    return load_runtime_config(config_path, overrides=overrides)


preset_option = click.option("--preset", type=str, default=None, help=f"model shapes: {', '.join(PRESETS)} (default tiny)")
config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None, help="RuntimeConfig YAML/JSON file")


def _print_synth(result: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for note in result.get("notes", []):
        click.echo(f"note: {note}", err=True)
    table = Table(show_header=False, box=None)
    rows = [
        ("wrote", result["out"]),
        ("preset / device", f"{result['preset']} / {result['device']}"),
        ("voice / seed", f"{result['voice']} / {result['seed']}"),
        ("audio", f"{result['audio_s']:.2f} s ({result['frames']} frames)"),
        ("wall", f"{result['wall_s']:.2f} s (model load {result['load_s']:.2f} s, apart)"),
        ("RTF", f"{result['rtf']:.3f}  (wall / audio; RTFx {1 / result['rtf']:.1f})" if result["rtf"] else "n/a"),
        ("first chunk", f"{result['ttfc_s']:.3f} s" if result["ttfc_s"] is not None else "n/a"),
        ("stages", ", ".join(f"{k} {v:.2f}s" for k, v in result["stage_s"].items() if v)),
    ]
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


@click.command()
@click.argument("text")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="WAV file to write")
@click.option("--voice", default="alloy", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--speed", type=float, default=1.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@preset_option
@config_option
@knob_options
def synth(text: str, out: str, voice: str, seed: int, speed: float, as_json: bool, preset, config_path, **kwargs) -> None:
    """Synthesise TEXT once through the engine and write a WAV file."""
    config = _config(config_path, preset, kwargs)  # validated before torch is imported: bad input fails fast
    from vvbench.runtime.checks import check_request
    from vvbench.runtime.request import SynthesisRequest

    check_request(SynthesisRequest(text=text, voice=voice, seed=seed, speed=speed), config.max_input_chars)
    from vvbench.runtime.oneshot import synthesize_to_file

    result = synthesize_to_file(config, text, out, voice=voice, seed=seed, speed=speed)
    _print_synth(result, as_json)


def _gib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**30:.3f}"


@click.command()
@click.option("--streams", type=int, default=None, help="concurrent streams (default: max_batch)")
@click.option("--max-audio-min", type=float, default=5.0, show_default=True, help="longest audio per stream, minutes")
@click.option("--budget", type=str, default=None, help="memory per device, e.g. 80GiB (default: the device's total)")
@click.option("--json", "as_json", is_flag=True)
@preset_option
@config_option
@knob_options
def plan(streams, max_audio_min, budget, as_json, preset, config_path, **kwargs) -> None:
    """Predict memory per device: weights, KV caches, conv caches, activations; what fits."""
    from vvbench.core.errors import InputError
    from vvbench.core.units import parse_bytes

    if streams is not None and streams < 1:
        raise InputError("--streams must be at least 1", param="streams")
    if max_audio_min <= 0:
        raise InputError("--max-audio-min must be positive", param="max_audio_min")
    config = _config(config_path, preset, kwargs)
    budget_bytes = parse_bytes(budget, "--budget") if budget else None
    from vvbench.runtime.plan import memory_plan  # torch: only once the input is known to be good

    result = memory_plan(config, streams=streams, max_audio_min=max_audio_min, budget_bytes=budget_bytes)
    data = result.to_json()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for note in data["notes"]:
        click.echo(f"note: {note}", err=True)
    head = Table(title=f"{data['preset']} ({data['dtype']}): {data['streams']} streams x {data['max_audio_min']:g} min (GiB)", show_header=True)
    for col in ("device", "weights", "KV", "conv", "activ.", "overhead", "total", "budget"):
        head.add_column(col, justify="right")
    for dev, d in data["devices"].items():
        head.add_row(dev, _gib(d["weights"]), _gib(d["kv_cache"]), _gib(d["conv_cache"]), _gib(d["activations"]),
                     _gib(d["overhead"]), _gib(d["total"]), _gib(data["budget_bytes"][dev]))
    console.print(head)
    facts = Table(show_header=False, box=None)
    facts.add_row("parameters", ", ".join(f"{k} {v / 1e6:,.1f}M" for k, v in data["params"].items() if k != "lm_layers")
                  + f"  (total {data['params_total'] / 1e9:.3f}B)")
    facts.add_row("weight bytes", f"{data['weights_bytes']:,} = params x {data['dtype']} size")
    facts.add_row("KV per token", f"{data['kv_bytes_per_token']:,} B per cache (x2 with CFG)")
    facts.add_row("KV per stream", _gib(data["kv_bytes_per_stream"]) + f" GiB at {data['max_audio_min']:g} min ({data['tokens_per_audio_s']:.2f} text tokens per audio second)")
    facts.add_row("max streams", f"{data['max_streams']} at {data['max_audio_min']:g} min each")
    facts.add_row("max audio", f"{data['max_audio_min_fit']} min per stream at {data['streams']} streams")
    console.print(facts)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind (loopback by default)")
@click.option("--port", type=int, default=8000, show_default=True, help="port to bind; 0 picks a free one")
@click.option("--data-dir", type=click.Path(file_okay=False), default="vvbench-data", show_default=True,
              help="jobs database and chunk files")
@click.option("--api-key", envvar="VVBENCH_API_KEY", default=None, help="require `Authorization: Bearer KEY` on /v1 and /admin [env VVBENCH_API_KEY]")
@click.option("--open-admin", is_flag=True, help="open /admin without --api-key (refused unless --host is loopback)")
@click.option("--allow-faults", is_flag=True, help="allow fault knobs (faults.*: crash, hang, leak, noise), as flags, in --config and through /admin/config")
@click.option("--max-jobs", type=int, default=None, help="unfinished jobs accepted before new ones are refused with 503 (default 10000)")
@click.option("--max-job-streams", type=int, default=None, help="engine slots long-form jobs may hold at once (default max_batch // 2, at least 1)")
@click.option("--max-job-chars", type=int, default=None, help="longest job input accepted (default 86000: 90 minutes of speech)")
@click.option("--job-chunk-frames", type=int, default=None, help="frames per persisted job chunk (default about 10 s of audio)")
@click.option("--rate-limit", type=float, default=None, help="requests per second per API key or client address (default: no limit)")
@click.option("--rate-burst", type=int, default=None, help="token-bucket size for --rate-limit (default max(1, ceil(rate)))")
@click.option("--memory-guard", default=None, help="refuse new work (503) above this memory use: bytes (8GiB, 500MB) or a fraction (0.9)")
@click.option("--memory-budget", default=None, help="memory the engine admits KV caches against (forms as --memory-guard): work that can "
              "never fit is refused, the rest waits until it fits (default: --memory-guard, else 0.9 of the device's memory)")
@click.option("--short-first/--no-short-first", default=True, show_default=True,
              help="streaming requests before jobs and jobs capped at --max-job-streams; off: one FIFO queue")
@click.option("--health-stall-s", type=float, default=None, help="/healthz fails after this long without engine progress while work waits (default 30)")
@click.option("--drain-timeout-s", type=float, default=None, help="on SIGTERM, how long in-flight requests may take (default 30)")
@click.option("--header-timeout-s", type=float, default=None, help="close a connection whose request headers take longer than this (default 10)")
@click.option("--body-timeout-s", type=float, default=None, help="refuse (408) a request body not complete this long after its headers (default 30)")
@click.option("--max-header-bytes", type=int, default=None, help="largest request head accepted; 431 above (default 16384)")
@preset_option
@config_option
@knob_options
def serve(host: str, port: int, data_dir: str, api_key, open_admin, allow_faults, max_jobs, max_job_streams, max_job_chars,
          job_chunk_frames, rate_limit, rate_burst, memory_guard, memory_budget, short_first, health_stall_s, drain_timeout_s,
          header_timeout_s, body_timeout_s, max_header_bytes, preset, config_path, **kwargs) -> None:
    """Run the TTS service (OpenAI-compatible /v1/audio/speech, jobs, metrics) until SIGTERM.

    `/admin` needs --api-key (or --open-admin on loopback); fault knobs need --allow-faults.
    """
    from vvbench.core.proc import LISTENING
    from vvbench.server.settings import build_settings, check_exposure

    config = _config(config_path, preset, kwargs)
    settings = build_settings(
        data_dir=data_dir, api_key=api_key, open_admin=open_admin, allow_faults=allow_faults, max_jobs=max_jobs,
        max_job_streams=max_job_streams, max_job_chars=max_job_chars,
        job_chunk_frames=job_chunk_frames, rate_limit_rps=rate_limit, rate_burst=rate_burst, memory_guard=memory_guard,
        memory_budget=memory_budget, short_first=short_first, health_stall_s=health_stall_s, drain_timeout_s=drain_timeout_s,
        header_timeout_s=header_timeout_s, body_timeout_s=body_timeout_s, max_header_bytes=max_header_bytes)
    check_exposure(settings, config.faults.any_set(), host)
    from vvbench.server.main import serve as run_service  # the web stack, once the flags are known to be good

    verbose = logging.getLogger().level <= logging.INFO
    run_service(config, settings, host=host, port=port, access_log=verbose,
                on_listening=lambda url: click.echo(f"vvbench serve: {LISTENING}{url}"))
