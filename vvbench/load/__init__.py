"""Load generation: request mix, arrival schedules, the client, the playback model, per-request rows.

Only `vvbench.load.users` and `vvbench.load.worker` import Locust (which monkey-patches the whole
process with gevent); they run in the load processes `vvbench run` starts, never in the CLI's
process. Everything else here is plain Python, imported by the CLI and the tests.
"""
