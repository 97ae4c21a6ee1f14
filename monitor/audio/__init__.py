"""Audio checks on synthesised speech: blind SNR, silence, dropouts, clipping, level, duration, NaN/empty.

- `wada`: the WADA-SNR blind estimator;
- `levels`: frame levels, speech activity, gaps and clipping of one waveform;
- `checks`: `check_audio(samples, rate, expected_s, thresholds) -> AudioReport`, a verdict and a
  reason per check (`vvbench check-audio` and the watchdog's canary use it);
Pure numpy functions of a waveform; nothing here knows which service produced it. Reading WAV
files and bytes (every common sample format, raw PCM) is `vvbench.core.audio`'s, the one reader.
"""
