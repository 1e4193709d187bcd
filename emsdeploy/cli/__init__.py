"""Command-line interface. Each command lives in its own module and only parses arguments;
the work is done by library functions. Heavy imports happen inside commands so that
``emsdeploy --help`` stays fast."""

from .main import cli, main

__all__ = ["cli", "main"]
