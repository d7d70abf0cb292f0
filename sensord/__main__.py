"""`python -m sensord`."""

from .cli import run

run()
