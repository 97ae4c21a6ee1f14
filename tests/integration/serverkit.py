"""Helpers shared by the service tests (audio parsing, the error-shape assertion)."""

from __future__ import annotations

import io
import wave

import httpx


def wav_info(data: bytes) -> tuple[int, int, int, int]:
    """(sample rate, channels, sample width, frames) of a complete WAV."""
    with wave.open(io.BytesIO(data)) as w:
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()


def assert_error(resp: httpx.Response, status: int, param: str | None = "__any__") -> dict:
    """The response is `status` with the OpenAI error shape (naming `param` when given)."""
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    body = resp.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}, err
    assert isinstance(err["message"], str) and err["message"]
    if param != "__any__":
        assert err["param"] == param, err
    return err
