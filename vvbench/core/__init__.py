"""Shared helpers, one per job: errors, units, loopback networking, audio I/O (WAV/PCM and
audibility), child processes, atomic files and validation messages. Imports nothing of vvbench
above it, and nothing heavy (no torch, pandas or Locust)."""
