"""The watchdog (`vvbench watch`): supervise a TTS service, restart it before it breaks, flag bad audio.

- `config`: the configuration model (YAML file and flags);
- `rules`: pure functions from recent observations to actions;
- `supervisor`: the work loop and the service's phases (start, ready, drain, backoff, give up);
- `process`: the spawned or attached service process;
- `probes`, `canary`: health probes and the canary synthesis, on their own threads;
- `events`, `state`, `systemd`: what the watchdog makes visible (stderr, JSONL, alert hook,
  metrics, systemd notifications).

Layering: like all of `monitor`, nothing here imports the reference runtime, torch or locust.
"""
