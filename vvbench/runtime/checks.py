"""What makes a synthesis request acceptable, checked before any model work (and before torch loads).

`check_request` is what `Engine.submit` applies first; the CLI applies it too before it imports
the engine, so `vvbench synth "" ...` answers its one-line error at once instead of after
torch has loaded. Bad input raises `InputError` naming the parameter.
"""

from __future__ import annotations

from vvbench.core.errors import InputError
from vvbench.runtime.request import SynthesisRequest
from vvbench.runtime.voices import Voice, get_voice

SPEED_RANGE = (0.25, 4.0)


def check_request(request: SynthesisRequest, max_input_chars: int) -> Voice:
    """Check text, length, speed, voice and step count; returns the resolved voice."""
    text = request.text if isinstance(request.text, str) else ""
    if not text.strip():
        raise InputError("input must contain text", param="input")
    limit = request.max_input_chars if request.max_input_chars is not None else max_input_chars
    if len(text) > limit:
        raise InputError(f"input is {len(text)} characters; the limit is {limit}", param="input")
    if not (SPEED_RANGE[0] <= request.speed <= SPEED_RANGE[1]):
        raise InputError(f"speed must be between {SPEED_RANGE[0]} and {SPEED_RANGE[1]} (got {request.speed})", param="speed")
    voice = get_voice(request.voice)
    if request.diffusion_steps is not None and not (1 <= request.diffusion_steps <= 1000):
        raise InputError("diffusion_steps must be between 1 and 1000", param="diffusion_steps")
    return voice
