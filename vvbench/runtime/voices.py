"""Built-in voices of the reference runtime.

A voice is a handful of synthesiser parameters (base pitch, pitch range, spectral tilt,
breathiness) plus a seed for its speaker embedding; it sounds like a buzzy vowel-ish voice,
not like the real voice of that name. The OpenAI voice names are accepted so that clients and
scenarios written for `/v1/audio/speech` work unchanged; the `vv-*` voices are the runtime's own.

Multi-speaker scripts: speaker k > 0 speaks with `speaker_variant(voice, k)`, a deterministic
shift of the request's voice in pitch and brightness (away from the voice's own register, so
speakers stay apart), kept inside a plausible range of 70..320 Hz.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

from vvbench.core.errors import InputError

__all__ = ["DEFAULT_VOICE", "VOICES", "Voice", "get_voice", "speaker_variant", "voice_names"]


@dataclass(frozen=True)
class Voice:
    """Synthesiser parameters of one voice.

    `f0_hz`: base fundamental frequency; `f0_range`: how far (semitones, each way) the model's
    pitch control moves it; `brightness`: spectral tilt offset, -1 (dark) .. 1 (bright);
    `breathiness`: share of the aperiodic (noise) part, 0..1; `embed_seed`: seed of the
    speaker embedding the engine conditions the LM on.
    """

    name: str
    f0_hz: float
    f0_range: float
    brightness: float
    breathiness: float
    embed_seed: int


def _voice(name: str, f0_hz: float, f0_range: float, brightness: float,
           breathiness: float) -> Voice:
    return Voice(name, f0_hz, f0_range, brightness, breathiness,
                 embed_seed=zlib.crc32(name.encode("utf-8")))


_BUILTIN = (
    # OpenAI-compatible names (register chosen to be plausible for each, nothing more)
    _voice("alloy", 170.0, 3.0, 0.0, 0.06),
    _voice("ash", 112.0, 3.0, -0.1, 0.05),
    _voice("ballad", 125.0, 4.0, 0.1, 0.07),
    _voice("coral", 215.0, 4.0, 0.3, 0.08),
    _voice("echo", 105.0, 2.5, -0.3, 0.05),
    _voice("fable", 150.0, 3.5, 0.2, 0.06),
    _voice("onyx", 90.0, 2.5, -0.5, 0.04),
    _voice("nova", 225.0, 4.0, 0.4, 0.07),
    _voice("sage", 195.0, 3.0, 0.0, 0.10),
    _voice("shimmer", 205.0, 4.5, 0.5, 0.09),
    _voice("verse", 128.0, 4.0, 0.0, 0.06),
    _voice("marin", 210.0, 3.5, 0.2, 0.07),
    _voice("cedar", 118.0, 3.0, -0.2, 0.05),
    # the runtime's own
    _voice("vv-anna", 218.0, 4.0, 0.3, 0.08),
    _voice("vv-ben", 108.0, 3.0, -0.2, 0.05),
    _voice("vv-carla", 192.0, 3.5, 0.1, 0.12),
    _voice("vv-dev", 140.0, 3.0, 0.0, 0.06),
)

VOICES: dict[str, Voice] = {v.name: v for v in _BUILTIN}
DEFAULT_VOICE = "alloy"

# Speaker k's offset from the base voice, in semitones (for a voice below 170 Hz; negated above).
_SPEAKER_SHIFT_ST = (0.0, 5.0, -4.0, 8.0, 3.0, -6.0, 10.0, -2.0)
_SPEAKER_BRIGHTNESS = (0.0, 0.3, -0.3, 0.15, -0.15, 0.4, -0.4, 0.2)
_F0_LIMITS_HZ = (70.0, 320.0)


def voice_names() -> list[str]:
    """Valid voice names, in the order they are listed to users."""
    return list(VOICES)


def get_voice(name: str) -> Voice:
    """The voice called `name` (case and surrounding spaces ignored); InputError if unknown."""
    voice = VOICES.get(name.strip().lower()) if isinstance(name, str) else None
    if voice is None:
        raise InputError(f"unknown voice {name!r}; valid voices: {', '.join(VOICES)}",
                         param="voice")
    return voice


def speaker_variant(voice: Voice, k: int) -> Voice:
    """The voice speaker `k` of a multi-speaker script uses (k = 0: `voice` itself)."""
    if k <= 0:
        return voice
    slot = k % len(_SPEAKER_SHIFT_ST) or 1  # wrap around but never back to the unshifted voice
    shift = _SPEAKER_SHIFT_ST[slot] * (1 if voice.f0_hz < 170.0 else -1)
    f0 = min(max(voice.f0_hz * 2.0 ** (shift / 12.0), _F0_LIMITS_HZ[0]), _F0_LIMITS_HZ[1])
    brightness = min(max(voice.brightness + _SPEAKER_BRIGHTNESS[slot], -1.0), 1.0)
    return replace(voice, name=f"{voice.name}/speaker{k}", f0_hz=f0, brightness=brightness,
                   embed_seed=(voice.embed_seed + 7919 * k) & 0xFFFFFFFF)
