"""Every number a RuntimeConfig holds is bounded and finite, from every source; /admin/config's path is strict.

The numeric knobs are read from the model's JSON schema, so a knob added later without bounds
fails here. Each gets the extremes an attacker or a typo would send.
"""

from __future__ import annotations

import math

import pytest

from vvbench.core.errors import ConfigError
from vvbench.runtime.config import CORES, RuntimeConfig, load_runtime_config, validate_config

HOSTILE = [10**400, -(10**400), 1e308, -1e308, math.nan, math.inf, -math.inf]


def _numeric(props: dict) -> list[str]:
    def kinds(p: dict) -> set[str]:
        return {p.get("type")} | {k for alt in p.get("anyOf", []) for k in kinds(alt)}

    return [name for name, p in props.items() if kinds(p) & {"integer", "number"}]


def _patches() -> list[tuple[str, dict]]:
    schema = RuntimeConfig.model_json_schema()
    defs = schema["$defs"]
    out = [(name, lambda v, n=name: {n: v}) for name in _numeric(schema["properties"])]
    out += [(f"faults.{n}", lambda v, n=n: {"faults": {n: v}}) for n in _numeric(defs["Faults"]["properties"])]
    out += [(f"diffusion_steps.{n}", lambda v, n=n: {"diffusion_steps": {"min": 1, "max": 10, "per_char": 0.1, n: v}})
            for n in _numeric(defs["AdaptiveSteps"]["properties"])]
    return [(f"{name}={v!r:.12}", make(v)) for name, make in out for v in HOSTILE]


PATCHES = _patches()


def test_the_schema_walk_found_the_knobs():
    names = {p.split("=")[0] for p, _ in PATCHES}
    assert {"max_batch", "request_timeout_s", "threads", "faults.leak_mb_per_request", "diffusion_steps.per_char",
            "faults.fail_step_after_requests"} <= names


@pytest.mark.parametrize("patch", [p for _, p in PATCHES], ids=[i for i, _ in PATCHES])
def test_no_extreme_number_passes_any_knob(patch):
    with pytest.raises(ConfigError):
        validate_config(patch)


def test_the_issues_adaptive_policy_is_refused_naming_the_field():
    with pytest.raises(ConfigError, match=r"diffusion_steps.*per_char.*less than or equal to 1000"):
        validate_config({"diffusion_steps": {"min": 1, "max": 10, "per_char": 1e308}})
    # The largest allowed value at the longest allowed input still gives a step count.
    cfg = validate_config({"diffusion_steps": {"min": 1, "max": 10, "per_char": 1000}, "max_input_chars": 2_000_000})
    assert cfg.steps_for(2_000_000) == 1


def test_resource_ceilings():
    with pytest.raises(ConfigError, match="threads"):
        validate_config({"threads": CORES + 1})
    assert validate_config({"threads": CORES}).threads == CORES
    with pytest.raises(ConfigError, match="request_timeout_s"):
        validate_config({"request_timeout_s": 86_401})
    with pytest.raises(ConfigError, match="leak_mb_per_request"):
        validate_config({"faults": {"leak_mb_per_request": 65536}})


@pytest.mark.parametrize("env, var", [({"VVBENCH_REQUEST_TIMEOUT_S": ".inf"}, "VVBENCH_REQUEST_TIMEOUT_S"),
                                      ({"VVBENCH_CFG_SCALE": ".nan"}, "VVBENCH_CFG_SCALE"),
                                      ({"VVBENCH_FAULTS__NOISE_DB": "-.inf"}, "VVBENCH_FAULTS__NOISE_DB"),
                                      ({"VVBENCH_THREADS": "1024"}, "VVBENCH_THREADS")])
def test_the_environment_gets_the_same_bounds(env, var):
    with pytest.raises(ConfigError, match=var):
        load_runtime_config(env=env)


def test_files_and_flags_get_the_same_bounds(tmp_path):
    f = tmp_path / "rt.yaml"
    f.write_text("batch_window_ms: .inf\n")
    with pytest.raises(ConfigError, match=f"{f}: batch_window_ms"):
        load_runtime_config(f, env={})
    with pytest.raises(ConfigError, match="command line: request_timeout_s"):
        load_runtime_config(env={}, overrides={"request_timeout_s": math.inf})


@pytest.mark.parametrize("patch", [{"chunk_frames": "5"}, {"batch_window_ms": "10"}, {"compile": "true"},
                                   {"diffusion_steps": True}, {"faults": {"noise_db": "-30"}},
                                   {"diffusion_steps": {"min": "1", "max": 10, "per_char": 0.1}}])
def test_strict_validation_refuses_what_only_coerces(patch):
    validate_config(patch)  # lax (files, env, flags: text read as YAML first) takes it
    with pytest.raises(ConfigError):
        validate_config(patch, strict=True)


def test_strict_validation_takes_json_types():
    cfg = validate_config({"chunk_frames": 5, "batch_window_ms": 10, "cfg_scale": 1, "diffusion_steps": {"min": 1, "max": 10, "per_char": 0}},
                          strict=True)
    assert cfg.batch_window_ms == 10.0 and cfg.diffusion_steps.per_char == 0.0
