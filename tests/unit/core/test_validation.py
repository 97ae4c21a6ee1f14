"""The one validation message: `SOURCE: dotted.path: message (got value)`, problems joined by `; `."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vvbench.core.validation import allowed_keys, format_validation_error, problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Policy(_Strict):
    low: int = Field(1, ge=1)
    high: int = 10


class Voice(_Strict):
    name: str
    speed: float = Field(1.0, gt=0)


class Config(_Strict):
    mode: Literal["fast", "exact"] = "fast"
    steps: int | Policy = 5
    voices: list[Voice] = []
    named: dict[str, Voice] = {}
    fallback: Voice | None = None
    label: str = "x"

    @field_validator("label")
    @classmethod
    def _no_spaces(cls, v: str) -> str:
        if " " in v:
            raise ValueError(f"must not contain spaces, got {v!r}")
        return v


def error(data: dict) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        Config.model_validate(data)
    return info.value


def test_source_path_message_and_value():
    msg = format_validation_error(error({"voices": [{"name": "a"}, {"name": "b", "speed": -1}]}), "cfg.yaml")
    assert msg == "cfg.yaml: voices.1.speed: Input should be greater than 0 (got -1)"


def test_several_problems_are_joined_and_repeats_dropped():
    msg = format_validation_error(error({"mode": "slow", "label": "a b", "voices": [{"speed": 2}]}), "command line")
    assert msg == ("command line: mode: Input should be 'fast' or 'exact' (got 'slow'); "
                   "voices.0.name: a value is required; label: must not contain spaces, got 'a b'")
    assert "Value error" not in msg  # pydantic's prefix for a validator's own message


def test_unknown_keys_list_the_allowed_ones_where_they_are():
    err = error({"colour": 1, "voices": [{"name": "a", "pitch": 2}], "named": {"x": {"name": "b", "Tone": 1}},
                 "fallback": {"name": "c", "rate": 3}, "steps": {"low": 2, "hgh": 3}})
    parts = format_validation_error(err, "f.yaml", model=Config, unknown="unknown knob").removeprefix("f.yaml: ")
    voice_keys = "allowed: name, speed"
    assert f"voices.0.pitch: unknown knob; {voice_keys}" in parts
    assert f"named.x.Tone: unknown knob; {voice_keys}" in parts  # a key the user wrote is kept, whatever its case
    assert f"fallback.rate: unknown knob; {voice_keys}" in parts
    assert "steps.hgh: unknown knob; allowed: low, high" in parts  # inside a union member, without its tag
    assert "colour: unknown knob; allowed: mode, steps, voices, named, fallback, label" in parts
    assert "Policy" not in parts and "int" not in parts.replace("integer", "")
    assert "allowed" not in format_validation_error(err)  # without the model: no list, still the path


def test_origins_name_where_each_value_came_from():
    err = error({"mode": "slow", "voices": [{"name": "a", "speed": 0}], "label": "a b"})
    msg = format_validation_error(err, "cfg.yaml", origins={"mode": "command line", "voices": "VVBENCH_VOICES"})
    assert msg == ("command line: mode: Input should be 'fast' or 'exact' (got 'slow'); "
                   "VVBENCH_VOICES: voices.0.speed: Input should be greater than 0 (got 0); "
                   "cfg.yaml: label: must not contain spaces, got 'a b'")
    assert format_validation_error(error({"label": "a b"})).startswith("label: ")  # no source: the path first


def test_long_values_are_cut_and_containers_not_repeated():
    msg = format_validation_error(error({"mode": "z" * 200, "voices": {"not": "a list"}}))
    assert "(got 'zzz" in msg and "...)" in msg and len(msg) < 250
    assert "voices: Input should be a valid list;" in msg + ";" and "not" not in msg.split("voices:")[1]


def test_problems_keep_the_path_for_callers_that_name_a_parameter():
    errors = error({"voices": [{"name": 3}]}).errors()
    assert problems(errors + errors) == problems(errors)  # repeats dropped
    first, *_ = problems(errors)
    assert first.path == "voices.0.name" and first.kind == "string_type" and str(first).startswith("voices.0.name: ")
    assert allowed_keys(Config, ["voices", 0]) == ["name", "speed"] and allowed_keys(Config, ["label"]) == []
