"""Audio checks on synthesised speech (blind SNR, and the watchdog's canary checks).

Pure numpy functions of a waveform; nothing here knows which service produced it.
"""
