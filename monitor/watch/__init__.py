"""The watchdog (`vvbench watch`): supervise a TTS service, restart it before it breaks, flag bad audio.

- `config`: the configuration model (YAML file and flags) and the rules it configures;
- `rules`: pure functions from recent observations to actions;
- `restarts`: exponential backoff and the crash-loop guard, as arithmetic;
- `supervisor`: the work loop — sample, judge, act — and `lifecycle`, the service's phase
  transitions (start, ready, drain, kill, attach mode's restart command);
- `sampling`: the shared samplers, retargeted at every start;
- `process`: the spawned or attached service process;
- `probes`, `canary`: health probes and the canary synthesis, on their own threads;
- `events`, `state`, `systemd`: what the watchdog makes visible (stderr, JSONL, alert hook,
  metrics, systemd notifications).

Layering: like all of `monitor`, nothing here imports the reference runtime, torch or locust.
"""
