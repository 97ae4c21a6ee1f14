"""The search space: parsing and its errors, the default space, params <-> knobs, and GPU pricing."""

import optuna
import pytest
import yaml

from vvbench.core.errors import ConfigError
from vvbench.runtime.config import RuntimeConfig, merge, validate_config
from vvbench.tuner.space import (
    baseline_params,
    default_space,
    load_space,
    params_to_knobs,
    parse_space,
    reference_knobs,
)

BASE = RuntimeConfig(preset="tiny")


def test_unknown_knob_is_named_with_the_allowed_ones():
    with pytest.raises(ConfigError) as err:
        parse_space({"max_btach": {"low": 1, "high": 4}}, BASE, "s.yaml", cuda_available=False)
    msg = str(err.value)
    assert msg.startswith("s.yaml: max_btach: unknown knob") and "max_batch" in msg


def test_an_empty_range_names_the_key():
    with pytest.raises(ConfigError, match=r"s.yaml: chunk_frames: .*empty range: low \(9\) > high \(3\)"):
        parse_space({"chunk_frames": {"low": 9, "high": 3}}, BASE, "s.yaml", cuda_available=False)


def test_a_value_the_config_refuses_is_named_with_the_file():
    with pytest.raises(ConfigError, match=r"s.yaml: max_batch: .*less than or equal to 256"):
        parse_space({"max_batch": {"low": 1, "high": 999}}, BASE, "s.yaml", cuda_available=False)


def test_load_space_reads_yaml_and_the_adaptive_policy(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"diffusion_steps": {"adaptive": {"min": {"low": 2, "high": 4}, "max": {"low": 6, "high": 10},
                                                                     "per_char": {"low": 0.0, "high": 0.1}}},
                                    "max_batch": {"choices": [1, 4]}}))
    space = load_space(path, BASE, cuda_available=False)
    dists = space.distributions()
    assert set(dists) == {"diffusion_steps.min", "diffusion_steps.max", "diffusion_steps.per_char", "max_batch"}
    assert isinstance(dists["diffusion_steps.min"], optuna.distributions.IntDistribution)
    assert space.restart_params() == ["max_batch"]
    assert reference_knobs(space, BASE) == {"diffusion_steps": 10}
    knobs = params_to_knobs({"diffusion_steps.min": 3, "diffusion_steps.max": 8, "diffusion_steps.per_char": 0.05}, 4)
    assert validate_config(merge(BASE.model_dump(mode="json"), knobs)).diffusion_steps.max == 8


def test_the_default_space_follows_the_knob_table_and_leaves_offload_out_without_cuda():
    space = default_space(BASE, cuda_available=False, cores=2)
    assert "offload" not in space.knobs()
    assert any("offload left out" in n and "CUDA" in n for n in space.notes)
    # restart-only knobs (from the knob table) define the server config; the rest are hot
    assert sorted(space.restart_params()) == ["batch_invariant", "max_batch"]
    assert space.diffusion_steps.high == BASE.preset_spec.diffusion.default_steps
    with_gpu = default_space(RuntimeConfig(preset="vibevoice-1.5b"), cuda_available=True, cores=2)
    assert {"offload.gpu_layers", "offload.diffusion", "offload.decoder", "offload.semantic"} <= set(with_gpu.distributions())
    assert "offload.gpu_layers" in with_gpu.restart_params()


def test_the_baseline_params_describe_the_base_config():
    space = default_space(BASE, cuda_available=False, cores=2)
    params = baseline_params(space, BASE)
    config = validate_config(merge(BASE.model_dump(mode="json"), params_to_knobs(params, 4)))
    assert config.model_dump() == validate_config({**BASE.model_dump(mode="json"), "diffusion_steps": 10}).model_dump()


def test_offload_params_rebuild_a_valid_map_and_the_plan_prices_it_for_a_gpu():
    from vvbench.runtime.plan import memory_plan

    base = RuntimeConfig(preset="vibevoice-1.5b", max_batch=4)
    totals = {}
    for gpu_layers in (28, 14, 0):
        knobs = params_to_knobs({"offload.gpu_layers": gpu_layers, "offload.decoder": "cpu"}, 28)
        config = validate_config(merge(base.model_dump(mode="json"), {**knobs, "offload_mode": "compute"}))
        plan = memory_plan(config, streams=4, max_audio_min=1.0, budget_bytes=24 * 2**30, cuda_available=True)
        totals[gpu_layers] = plan.devices["cuda:0"].total
        assert plan.devices["cpu"].weights > 0  # the decoder (and the CPU-side layers) live on the CPU
    # every layer moved to the CPU takes its weights off the GPU budget
    assert totals[28] > totals[14] > totals[0]
