"""`python -m tickwatch` is the `tickwatch` command."""

from tickwatch.cli import run

run()
