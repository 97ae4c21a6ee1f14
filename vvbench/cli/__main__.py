"""`python -m vvbench.cli ...` is the `vvbench` command."""

from vvbench.cli.main import main

main()
