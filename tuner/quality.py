"""Quality of a trial: its audio against the reference configuration's, for the same texts and seeds.

The runtime is seed-deterministic, so a config that computes the same thing gives the same
samples; what a cheaper config (fewer diffusion steps, another guidance scale) changes shows up
as the difference from the reference audio. `Probes` are the tuning scenario's first requests
(text, voice and seed as the load generator draws them, `vvbench.load.mix`), sent with the
watchdog's canary request (`vvbench.monitor.watch.canary.fetch`): all at once to a batch-invariant
config (a seed gives the same audio alone or in any batch, so the probes cost one request's time
instead of the sum), one at a time otherwise. Per probe:

- the quality: the mel magnitude SNR against the reference (`vvbench.tuner.spectral`), which
  is phase-blind: the waveform SNR reads about -3 dB for any change of the latents, because the
  synthesiser's phase drifts (the measurements are in docs/tuning.md);
- `snr_db = 10 log10(sum(ref^2) / sum((ref - x)^2))`, the waveform SNR, kept as information
  (100 dB: bit-identical audio); both over the longer of the two (the shorter padded with zeros,
  so a truncated answer costs its missing part) and capped at `MAX_SNR_DB` (identical audio has
  no finite SNR, and Optuna's constraints want finite numbers);
- the audio checks (`vvbench.monitor.audio.checks`: WADA SNR, clipping, dropouts, level,
  silence, duration against the reference's).

A trial's quality is the worst probe's mel SNR. The reference audio is kept as WAV files in the tune
directory (`reference/`), with the config that made it, so a resumed study compares with the
same audio.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vvbench.artifacts.scenarios import Scenario
from vvbench.core.audio import decode_wav, read_audio, write_wav
from vvbench.core.errors import InputError, TargetError
from vvbench.core.files import write_atomic
from vvbench.load.mix import RequestMix
from vvbench.monitor.audio.checks import check_audio
from vvbench.monitor.watch.canary import fetch
from vvbench.monitor.watch.config import Canary
from vvbench.tuner.spectral import MAX_DB as MAX_SNR_DB  # noqa: F401  (the cap, as named here before)
from vvbench.tuner.spectral import mel_snr_db, ratio_db

PROBE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Probe:
    """One quality probe: a request of the tuning scenario, sent outside the load."""

    text: str
    voice: str
    seed: int


@dataclass
class ProbeVerdict:
    """What one trial's probes measured."""

    snr_db: float | None  # the worst probe's mel SNR (the quality)
    waveform_db: float | None = None  # the worst probe's waveform SNR (information)
    failed_checks: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def scenario_probes(scenario: Scenario, count: int = 2) -> list[Probe]:
    """The scenario's first `count` requests as probes (a request without a seed gets its index)."""
    mix = RequestMix(scenario)
    out = []
    for i in range(count):
        spec = mix.spec(i)
        out.append(Probe(spec.text, spec.voice, spec.seed if spec.seed is not None else scenario.seed + i))
    return out


def _probe_audio(url: str, probe: Probe, api_key: str | None) -> np.ndarray:
    canary = Canary(text=probe.text, voice=probe.voice, seed=probe.seed, model="vvbench-tune", timeout=PROBE_TIMEOUT_S)
    got = fetch(url, canary, api_key)
    if got.error is not None or got.status != 200:
        raise TargetError(f"quality probe failed: {got.error or f'HTTP {got.status}'}")
    try:
        samples, _ = decode_wav(got.body, "quality probe")
    except InputError as exc:
        raise TargetError(f"quality probe: {exc}") from None
    return samples


def synthesise(url: str, probes: list[Probe], api_key: str | None = None, *, together: bool = False) -> list[np.ndarray]:
    """Each probe's audio from the service at `url`, in order; TargetError when one does not come back.

    `together`: send every probe at once (for a batch-invariant config), else one after the other.
    """
    if not together or len(probes) < 2:
        return [_probe_audio(url, probe, api_key) for probe in probes]
    with ThreadPoolExecutor(max_workers=len(probes), thread_name_prefix="vvbench-probe") as pool:
        futures = [pool.submit(_probe_audio, url, probe, api_key) for probe in probes]
        return [f.result() for f in futures]  # the first failure in probe order is raised, after all have ended


def snr_db(reference: np.ndarray, audio: np.ndarray) -> float:
    """SNR of `audio` against `reference` in dB (see the module docstring), at most MAX_SNR_DB."""
    n = max(len(reference), len(audio))
    ref = np.zeros(n, dtype=np.float64)
    ref[: len(reference)] = reference
    got = np.zeros(n, dtype=np.float64)
    got[: len(audio)] = audio
    return ratio_db(ref, got)


class Reference:
    """The reference configuration's probe audio, on disk in `folder` (see the module docstring)."""

    def __init__(self, folder: Path, probes: list[Probe], rate: int):
        self.folder = Path(folder)
        self.probes = probes
        self.rate = rate
        self.audio: list[np.ndarray] = []

    def _meta(self) -> dict:
        return {"probes": [p.__dict__ for p in self.probes]}

    def load(self) -> bool:
        """Read a reference recorded earlier for the same probes; False when there is none."""
        meta = self.folder / "reference.json"
        if not meta.is_file():
            return False
        saved = json.loads(meta.read_text())
        if saved.get("probes") != self._meta()["probes"]:
            return False
        self.audio = [read_audio(self.folder / f"probe-{i}.wav")[0] for i in range(len(self.probes))]
        return True

    def record(self, audio: list[np.ndarray], config: dict) -> None:
        """Keep the reference audio and the config that made it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for i, samples in enumerate(audio):
            write_wav(self.folder / f"probe-{i}.wav", samples, self.rate)
        self.audio = [read_audio(self.folder / f"probe-{i}.wav")[0] for i in range(len(audio))]
        write_atomic(self.folder / "reference.json", json.dumps({**self._meta(), "config": config}, indent=2))

    def judge(self, audio: list[np.ndarray]) -> ProbeVerdict:
        """The worst mel and waveform SNR against the reference and the audio checks' failures over all probes."""
        worst: float | None = None
        wave: float | None = None
        failed: list[str] = []
        reasons: list[str] = []
        for i, (ref, got) in enumerate(zip(self.audio, audio)):
            snr = mel_snr_db(ref, got, self.rate)
            worst = snr if worst is None else min(worst, snr)
            w = snr_db(ref, got)
            wave = w if wave is None else min(wave, w)
            report = check_audio(got, self.rate, expected_s=len(ref) / self.rate)
            for name in report.failed:
                if name not in failed:
                    failed.append(name)
            reasons += [f"probe {i}: {r}" for r in report.reasons()]
        return ProbeVerdict(worst, wave, failed, reasons)
