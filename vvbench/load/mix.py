"""The request mix: request index -> (class, text, voice, seed), deterministic and cheap.

Request `i` of a scenario is drawn from `random.Random(f"{scenario.seed}:{i}")` (string seeds go
through SHA-512, so the draw is the same in every process and Python version), so the mix is
identical whatever the number of workers and whichever worker sends it. Texts are built from
the corpus' units (sentences or script lines): a random start, consecutive units until the
drawn length is reached, wrapping around the corpus; a text never exceeds `max_chars` (the
last unit is cut at a word boundary when needed).

With `mix: round_robin`, request `i` is class `i mod n` and round `r = i div n` is drawn from
`random.Random(f"{scenario.seed}:round:{r}")` (no class draw), so every class of a round draws
the same length, start, voice index and `per_request` seed (`value + r`): classes with the same
text source, length and voices send the same request.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

from vvbench.artifacts.scenarios import Length, RequestClass, Scenario
from vvbench.load.corpora import units, units_from_text


@dataclass(frozen=True)
class RequestSpec:
    """Everything needed to send one request (and to identify its row)."""

    index: int
    cls: str
    api: str
    text: str
    voice: str
    seed: int | None
    response_format: str
    stream_format: str
    speed: float
    timeout_s: float
    poll_s: float


def draw_length(length: Length, rng: random.Random) -> int:
    """Characters for one request, following the class's length distribution."""
    if length.dist == "fixed":
        return length.min_chars
    if length.dist == "uniform":
        return rng.randint(length.min_chars, length.max_chars)
    value = rng.lognormvariate(math.log(length.median_chars or length.min_chars), length.sigma)
    return int(min(length.max_chars, max(length.min_chars, round(value))))


def build_text(pieces: tuple[str, ...], chars: int, max_chars: int, rng: random.Random) -> str:
    """Consecutive units from a random start until `chars` is reached, never over `max_chars`."""
    i = rng.randrange(len(pieces))
    out: list[str] = []
    total = 0
    while total < chars:
        unit = pieces[i % len(pieces)]
        room = max_chars - total - (1 if out else 0)
        if len(unit) > room:
            if out:
                break
            unit = unit[:room].rsplit(" ", 1)[0] if " " in unit[:room] else unit[:room]
        out.append(unit)
        total += len(unit) + (1 if len(out) > 1 else 0)
        i += 1
    script = all(re.match(r"Speaker \d+:", u) for u in out)
    return ("\n" if script else " ").join(out)


class RequestMix:
    """Draws RequestSpecs for a scenario (see the module docstring)."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.classes: list[RequestClass] = list(scenario.classes)
        self._weights = [c.weight for c in self.classes]
        self._units = {c.name: self._class_units(c) for c in self.classes}

    @staticmethod
    def _class_units(request_class: RequestClass) -> tuple[str, ...]:
        source = request_class.text
        if source.corpus is not None:
            return units(source.corpus)
        return units_from_text(Path(source.file).read_text(encoding="utf-8"))

    def spec(self, index: int) -> RequestSpec:
        """The request with this index (the same in every process)."""
        if self.scenario.mix == "round_robin":
            n = len(self.classes)
            cls, draw = self.classes[index % n], index // n
            rng = random.Random(f"{self.scenario.seed}:round:{draw}")
        else:
            draw = index
            rng = random.Random(f"{self.scenario.seed}:{index}")
            cls = rng.choices(self.classes, weights=self._weights)[0] if len(self.classes) > 1 else self.classes[0]
        chars = draw_length(cls.length, rng)
        text = build_text(self._units[cls.name], chars, cls.length.max_chars, rng)
        voice = cls.voices[rng.randrange(len(cls.voices))]
        if cls.seeds.policy == "fixed":
            seed: int | None = cls.seeds.value
        elif cls.seeds.policy == "per_request":
            seed = cls.seeds.value + draw
        else:
            seed = None
        return RequestSpec(index=index, cls=cls.name, api=cls.api, text=text, voice=voice, seed=seed,
                           response_format=cls.response_format, stream_format=cls.stream_format,
                           speed=cls.speed, timeout_s=cls.timeout, poll_s=cls.poll_interval)
