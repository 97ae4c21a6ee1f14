"""The `vvbench` command line: one module per command group, each importing only what it uses.

`vvbench.cli.main` holds the root group, which loads a command's module only when that command
runs, so `vvbench watch`, `check-audio`, `report` and `compare` never import torch, Locust or
the runtime package (its MKL pin is a process-wide side effect a watchdog must not inherit).
"""
