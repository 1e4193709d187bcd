"""The ``emsdeploy`` command group and its error handling."""

from __future__ import annotations

import importlib
import sys

import click

from .. import __version__
from ..errors import EmsdeployError

# Explicit command list (no folder scan): module name in emsdeploy.cli -> attribute.
COMMANDS = [
    ("convert", "convert"),
    ("trace", "trace"),
    ("inspect", "inspect"),
    ("export", "export"),
    ("run", "run"),
    ("verify", "verify"),
    ("energy", "energy"),
    ("fit", "fit"),
    ("train", "train"),
    ("eval", "eval"),
    ("data", "data"),
]

EXIT_ERROR = 2  # bad input, unsupported model, unreadable file


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EmsdeployError as e:
            _fail(str(e))
        except _config_error() as e:
            _fail(f"config error: {e}")
        except _data_error() as e:
            _fail(f"data error: {e}")
        except KeyboardInterrupt:
            _fail("interrupted (SIGINT); temporary files were removed, earlier outputs are untouched", 130)

    def list_commands(self, ctx):
        return [name for name, _ in COMMANDS]

    def get_command(self, ctx, name):
        for cmd_name, module in COMMANDS:
            if cmd_name == name:
                return getattr(importlib.import_module(f"emsdeploy.cli.cmd_{module}"), module)
        return None


def _config_error():
    from ..models import ConfigError

    return ConfigError


def _data_error():
    from ..models.data import DatasetError

    return DatasetError


def _fail(message: str, status: int = EXIT_ERROR) -> None:
    click.echo(f"error: {' '.join(message.split())}", err=True)  # one line, always
    sys.exit(status)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="emsdeploy")
def cli() -> None:
    """Deploy EMS-YOLO spiking detectors: trace to a spiking graph IR, export to Lava
    (Loihi fixed point) and stepwise ONNX, verify spike equivalence, and report energy."""


def main() -> None:
    cli(prog_name="emsdeploy")
