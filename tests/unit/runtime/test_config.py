"""RuntimeConfig: validation messages, precedence, hot/restart marking, adaptive steps."""

import json

import pytest

from vvbench.core.errors import ConfigError
from vvbench.runtime.config import (
    HOT_KNOBS,
    AdaptiveSteps,
    RuntimeConfig,
    dump_config,
    knob_fields,
    load_runtime_config,
    validate_config,
)


@pytest.mark.parametrize(
    "data, words",
    [
        ({"diffusion_steps": -3}, ["diffusion_steps", "1 and 1000", "-3"]),
        ({"diffusion_steps": 0}, ["diffusion_steps"]),
        ({"preset": "giant"}, ["preset", "giant", "tiny", "vibevoice-1.5b", "chattts"]),
        ({"max_batch": 0}, ["max_batch", "greater than or equal to 1", "0"]),
        ({"dtype": "int8"}, ["dtype", "float32", "bfloat16"]),
        ({"device": "tpu"}, ["device", "cuda:N"]),
        ({"batch_window_ms": -1}, ["batch_window_ms"]),
        ({"speed_of_light": 3}, ["speed_of_light", "unknown knob", "max_batch"]),
        ({"faults": {"noise_db": 10}}, ["faults.noise_db", "0"]),
        ({"faults": {"explode": True}}, ["faults.explode"]),
        ({"diffusion_steps": {"min": 9, "max": 3, "per_char": 0.1}}, ["diffusion_steps", "min (9) must be <= max (3)"]),
        ({"preset": "vibevoice-1.5b", "offload": {"lm.layers.0-15": "cuda", "lm.layers.10-27": "cpu"}}, ["offload", "overlap"]),
        ({"preset": "vibevoice-1.5b", "offload": {"lm.layers.0-15": "cuda"}}, ["offload", "16-27"]),
        ({"preset": "tiny", "offload": {"semantic": "cpu"}}, ["offload", "semantic"]),
    ],
)
def test_invalid_values_name_field_and_allowed(data, words):
    with pytest.raises(ConfigError) as exc:
        validate_config(data, "cfg.yaml")
    msg = str(exc.value)
    assert msg.startswith("cfg.yaml: ")
    for w in words:
        assert w.lower() in msg.lower(), (w, msg)


def test_valid_full_offload_map():
    cfg = validate_config({"preset": "vibevoice-1.5b", "offload": {"lm.layers.0-13": "cuda", "lm.layers.14-27": "cpu", "semantic": "cpu"}})
    assert cfg.offload["lm.layers.14-27"] == "cpu"


def test_precedence_defaults_file_env_flags(tmp_path):
    f = tmp_path / "rt.yaml"
    f.write_text("max_batch: 4\nchunk_frames: 3\nfaults:\n  leak_mb_per_request: 2\n")
    env = {"VVBENCH_CHUNK_FRAMES": "5", "VVBENCH_FAULTS__NOISE_DB": "-30", "VVBENCH_UNRELATED": "x"}
    cfg = load_runtime_config(f, env=env, overrides={"max_batch": 16})
    assert cfg.max_batch == 16  # flag beats file
    assert cfg.chunk_frames == 5  # env beats file
    assert cfg.faults.leak_mb_per_request == 2  # file, merged with env's faults.noise_db
    assert cfg.faults.noise_db == -30
    assert cfg.first_chunk_frames == RuntimeConfig().first_chunk_frames  # default


def test_json_file_and_round_trip(tmp_path):
    cfg = RuntimeConfig(preset="small", diffusion_steps=AdaptiveSteps(min=3, max=12, per_char=0.01))
    y = tmp_path / "c.yaml"
    y.write_text(dump_config(cfg))
    assert load_runtime_config(y, env={}) == cfg
    j = tmp_path / "c.json"
    j.write_text(json.dumps(cfg.model_dump(mode="json")))
    assert load_runtime_config(j, env={}) == cfg


@pytest.mark.parametrize("content, word", [("max_batch: [", "not valid YAML"), ("- 1\n- 2\n", "mapping")])
def test_bad_files(tmp_path, content, word):
    f = tmp_path / "bad.yaml"
    f.write_text(content)
    with pytest.raises(ConfigError, match=word):
        load_runtime_config(f, env={})


def test_missing_file():
    with pytest.raises(ConfigError, match="cannot read"):
        load_runtime_config("/nonexistent/rt.yaml", env={})


def test_hot_and_restart_knobs_marked():
    fields = knob_fields()
    assert fields["batch_window_ms"]["hot"] and fields["faults.noise_db"]["hot"]
    assert not fields["preset"]["hot"] and not fields["max_batch"]["hot"] and not fields["offload"]["hot"]
    assert "diffusion_steps" in HOT_KNOBS and "preset" not in HOT_KNOBS
    assert all(v["description"] for v in fields.values())


def test_adaptive_steps_policy():
    cfg = RuntimeConfig(diffusion_steps={"min": 4, "max": 20, "per_char": 0.05})
    assert cfg.steps_for(0) == 20
    assert cfg.steps_for(100) == 15
    assert cfg.steps_for(100000) == 4
    assert RuntimeConfig(diffusion_steps=7).steps_for(500) == 7
    assert RuntimeConfig(preset="realtime-0.5b").steps_for(10) == 5  # preset default


def test_chattts_says_steps_do_not_apply():
    cfg = RuntimeConfig(preset="chattts", diffusion_steps=20)
    assert cfg.steps_for(50) == 0
    assert any("diffusion_steps does not apply to preset chattts" in n for n in cfg.notes())
    assert RuntimeConfig(preset="chattts").notes() == []
