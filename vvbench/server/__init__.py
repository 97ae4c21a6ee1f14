"""The reference TTS service: FastAPI + uvicorn around one engine (see `app.create_app`).

Modules: `app` (the application and its lifespan), `speech` and `streaming` (the
OpenAI-compatible endpoint), `jobs`, `jobrunner` and `jobstore` (long-form jobs persisted in
SQLite), `admission` and `security` (queue priority, memory guard, rate limit, API key),
`errors` (the OpenAI error shape), `metrics` (Prometheus), `ops` (health, readiness, stats,
admin), `middleware`, `settings` and `main` (the uvicorn runner). Starting `vvbench serve` as a
child process is `vvbench.core.proc` (through the embedded target, or the tests' `serverkit`).
Importing this package imports nothing heavy.
"""
