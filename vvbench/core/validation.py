"""One way to say what is wrong with validated input: pydantic's errors as one line.

Every boundary that validates with pydantic (runtime config, scenario files, watch config,
`vvbench run` options, check-audio thresholds, service settings, the service's request bodies)
reports through `format_validation_error` or, where each problem is needed on its own (the
service names the parameter of the first one), `problems`. The line reads

    SOURCE: dotted.path: message (got value); other.path: message

- **source**: where the values came from, a file or "command line"; with `origins`, a problem
  under a path that came from elsewhere (a flag over a file) names that origin instead, and each
  change of origin starts a new prefix.
- **path**: the location in the input, without pydantic's union-member tags (`int`,
  `AdaptiveSteps`, `function-after[...]`), which name no key the user wrote.
- **message**: pydantic's, without its "Value error, " prefix; "a value is required" for a missing
  key; for an unknown key, `unknown` (e.g. "unknown key") and, with the `model`, the keys allowed
  at that place.
- **value**: the offending input, when it is a scalar the message does not already quote,
  shortened past 80 characters.

Several problems are joined with `; ` (repeats dropped), in pydantic's order.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

MAX_SHOWN = 80
_UNION_TAGS = {"str", "int", "float", "bool", "none", "bytes"}


@dataclass(frozen=True)
class Problem:
    """One validation problem: where (dotted path, "" for the whole input), what, and pydantic's type."""

    path: str
    message: str
    kind: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def _is_union_tag(part: Any) -> bool:
    """pydantic puts the union member it tried (`int`, `VoiceRef`, `list[str]`) into an error's loc."""
    text = str(part)
    return isinstance(part, str) and (text in _UNION_TAGS or text[:1].isupper() or "[" in text or text.startswith("function-"))


def _model_in(ann: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds directly (itself, or a member of Optional/Union/Annotated)."""
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    if typing.get_origin(ann) in (typing.Union, types.UnionType, typing.Annotated):
        for arg in typing.get_args(ann):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


def _item_of(ann: Any) -> Any:
    """The element annotation of a list/tuple/set or the value annotation of a dict (through Optional)."""
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        items = [_item_of(a) for a in typing.get_args(ann)]
        return next((i for i in items if i is not None), None)
    args = typing.get_args(ann)
    if origin in (list, tuple, set, frozenset) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def allowed_keys(model: type[BaseModel], path: Iterable[Any]) -> list[str]:
    """The keys `model` accepts at `path` (loc parts: field names, list indexes, dict keys); [] if unknown."""
    ann: Any = model
    for part in path:
        found = _model_in(ann)
        field = found.model_fields.get(part) if found is not None and isinstance(part, str) else None
        ann = field.annotation if field is not None else _item_of(ann)
        if ann is None:
            return []
    found = _model_in(ann)
    if found is None:
        return []
    return [f.alias or name for name, f in found.model_fields.items()]


def _shown(value: Any, message: str) -> str:
    """` (got VALUE)` for a scalar the message does not quote already (containers are not repeated)."""
    if isinstance(value, (dict, list, tuple, set)):
        return ""
    text = repr(value)
    if f"got {text}" in message or (isinstance(value, str) and text in message):
        return ""
    return f" (got {text[:MAX_SHOWN - 3]}...)" if len(text) > MAX_SHOWN else f" (got {text})"


def describe(err: Mapping[str, Any], model: type[BaseModel] | None = None, unknown: str = "unknown key") -> Problem:
    """One pydantic error dict (`exc.errors()` item) -> Problem (see the module docstring)."""
    kind = str(err.get("type", ""))
    loc = tuple(err.get("loc", ()))
    # the last part of an unknown-key error is the key the user wrote, whatever it looks like
    keep = len(loc) - 1 if kind == "extra_forbidden" else len(loc)
    parts = [p for i, p in enumerate(loc) if i >= keep or not _is_union_tag(p)]
    path = ".".join(str(p) for p in parts)
    if kind == "extra_forbidden":
        allowed = allowed_keys(model, parts[:-1]) if model is not None else []
        return Problem(path, unknown + (f"; allowed: {', '.join(allowed)}" if allowed else ""), kind)
    if kind == "missing":
        return Problem(path, "a value is required", kind)
    message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return Problem(path, message + _shown(err.get("input"), message), kind)


def problems(errors: Iterable[Mapping[str, Any]], model: type[BaseModel] | None = None,
             unknown: str = "unknown key") -> list[Problem]:
    """Every error of `exc.errors()` as a Problem, repeats dropped, in order."""
    return list(dict.fromkeys(describe(e, model, unknown) for e in errors))


def format_validation_error(exc: Any, source: str | None = None, *, model: type[BaseModel] | None = None,
                            origins: Mapping[str, str] | None = None, unknown: str = "unknown key") -> str:
    """A pydantic `ValidationError` as one line: `SOURCE: path: message (got value); ...` (module docstring).

    `source`: the prefix (a file, "command line"; None: none). `origins`: dotted path -> where the
    value at or under it came from, overriding `source` for problems there. `model`: the
    validated model, so that an unknown key lists the allowed ones. `unknown`: what an unknown
    key is called ("unknown knob").
    """
    origins = origins or {}
    out: list[str] = []
    current: str | None = None
    for problem in problems(exc.errors(), model, unknown):
        origin = next((o for key, o in origins.items() if problem.path == key or problem.path.startswith(key + ".")), source)
        if origin is not None and (origin != current or not out):
            out.append(f"{origin}: {problem}")
        else:
            out.append(str(problem))
        current = origin
    return "; ".join(out)
