"""Scenario files: the shipped ones are valid; invalid ones name the file, the dotted path and the expectation."""

import pytest

from vvbench.artifacts.scenarios import load_scenario, resolve_scenario, shipped_scenarios
from vvbench.core.errors import ConfigError

SHIPPED = ("smoke", "short-burst", "dialogue", "podcast-long", "spike-15", "nightly")

GOOD = """
classes:
  - name: a
    text: {corpus: short}
arrival:
  poisson: {rate: 2}
duration: 30s
"""


def test_every_shipped_scenario_is_valid():
    assert set(SHIPPED) <= set(shipped_scenarios())
    for name in SHIPPED:
        s = resolve_scenario(name)
        assert s.name == name and s.duration > 0 and s.classes


def test_smoke_fits_in_30_seconds():
    s = resolve_scenario("smoke")
    assert s.window_s <= 15 and s.arrival.closed is not None


def test_durations_and_defaults(tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text(GOOD)
    s = load_scenario(f)
    assert s.name == "ok" and s.duration == 30.0 and s.drain == 120.0 and s.prebuffer_ms == 200


@pytest.mark.parametrize("text, where, expect", [
    (GOOD.replace("duration: 30s", "duration: 30 parsecs"), "duration:", "cannot read '30 parsecs' as a duration"),
    (GOOD + "colour: blue\n", "colour:", "unknown key; allowed: name, description, seed, classes"),
    (GOOD.replace("poisson: {rate: 2}", "poisson: {rate: 2}\n  closed: {users: 3}"), "arrival:", "exactly one of closed, poisson"),
    (GOOD.replace("poisson: {rate: 2}", "poisson: {rate: -1}"), "arrival.poisson.rate:", "greater than 0"),
    (GOOD.replace("poisson: {rate: 2}", "poison: {rate: 2}"), "arrival.poison:", "allowed: closed, poisson, constant, stages"),
    (GOOD.replace("{corpus: short}", "{corpus: tweets}"), "classes.0.text.corpus:", "'short', 'medium', 'long' or 'podcast'"),
    (GOOD.replace("{corpus: short}", "{file: missing.txt}"), "classes.0.text.file:", "cannot read text file"),
    (GOOD + "slos: {ttfa_p95: 1}\n", "slos:", "unknown metric 'ttfa_p95'"),
    (GOOD.replace("    text: {corpus: short}", "    text: {corpus: short}\n    length: {min_chars: 50, max_chars: 10}"),
     "classes.0.length:", "min_chars (50) must be <= max_chars (10)"),
    (GOOD.replace("duration: 30s", ""), "", "duration is required"),
    (GOOD.replace("classes:", "clases:"), "classes:", "required"),
])
def test_invalid_file_names_file_path_and_expectation(tmp_path, text, where, expect):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_scenario(f)
    msg = str(info.value)
    assert msg.startswith(f"{f}: ") and where in msg and expect in msg, msg


def test_not_yaml_and_not_a_mapping(tmp_path):
    for text, expect in (("a: [1, 2\n", "not valid YAML"), ("- 1\n- 2\n", "expected a mapping")):
        f = tmp_path / "x.yaml"
        f.write_text(text)
        with pytest.raises(ConfigError, match=expect):
            load_scenario(f)


def test_unknown_name_lists_shipped():
    with pytest.raises(ConfigError, match="unknown scenario 'nope'.*smoke"):
        resolve_scenario("nope")


def test_text_file_relative_to_scenario(tmp_path):
    (tmp_path / "lines.txt").write_text("Speaker 1: Hi.\nSpeaker 2: Hello.\n")
    f = tmp_path / "s.yaml"
    f.write_text(GOOD.replace("{corpus: short}", "{file: lines.txt}"))
    assert load_scenario(f).classes[0].text.file == str(tmp_path / "lines.txt")


def test_stages_define_duration_and_rescale():
    s = resolve_scenario("spike-15")
    assert s.window_s == 90 and s.duration == 80
    short = s.with_duration(8)
    assert short.duration == pytest.approx(8) and short.warmup == pytest.approx(1) and short.window_s == pytest.approx(9)
    assert short.arrival.stages.stages[1].burst == 15
    assert resolve_scenario("smoke").with_duration(4).duration == 4
