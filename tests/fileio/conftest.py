"""Shared pieces of the untrusted-file tests: small artifacts built in the test, the CLI run
in-process, and a check that a command's failure is one clear line."""

from __future__ import annotations

import ctypes
import os
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from emsdeploy.checkpoint import from_model, save_checkpoint
from emsdeploy.cli.main import cli
from emsdeploy.ir import write_ir
from emsdeploy.tracer import trace
from tests.helpers import tiny_ee


class Outcome:
    def __init__(self, result) -> None:
        self.code = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.exception = result.exception

    def assert_clear_error(self, *fragments: str) -> str:
        """Exit 2, one error line on stderr naming each fragment (the file, what is wrong), no
        traceback. Earlier ``warning:`` lines (e.g. "measuring on random inputs") are other notices."""
        assert not isinstance(self.exception, Exception) or isinstance(self.exception, SystemExit), repr(self.exception)
        assert self.code == 2, (self.code, self.stdout[-500:], self.stderr[-1000:])
        lines = [line for line in self.stderr.strip().splitlines() if not line.startswith("warning: ")]
        assert len(lines) == 1 and lines[0].startswith("error: "), self.stderr
        assert "Traceback" not in self.stderr + self.stdout
        for f in fragments:
            assert f in lines[0], (f, lines[0])
        return lines[0]


def run_cli(*args: str) -> Outcome:
    """``emsdeploy ARGS`` in this process (click's runner): fast, and exceptions stay visible."""
    return Outcome(CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True))


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fio_ck") / "tiny.pt"
    save_checkpoint(path, from_model(tiny_ee(), {"input_size": 32}))
    return path


@pytest.fixture(scope="session")
def tiny_ir(tmp_path_factory) -> Path:
    return write_ir(trace(tiny_ee(), (32, 32)), tmp_path_factory.mktemp("fio_ir") / "tiny.emsir")


# --- "nothing read outside the given file": inotify sees every open, C libraries included ---

_IN_OPEN, _IN_ACCESS, _IN_NONBLOCK = 0x20, 0x01, 0o4000


class OpenWatch:
    """Records whether anything opened or read ``path`` while the watch was on (Linux inotify)."""

    def __init__(self, path: Path) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(_IN_NONBLOCK)
        if self.fd < 0:
            pytest.skip("inotify is not available")
        self.wd = self.libc.inotify_add_watch(self.fd, os.fsencode(path), _IN_OPEN | _IN_ACCESS)

    def events(self) -> int:
        count = 0
        while True:
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                return count
            offset = 0
            while offset < len(data):
                _, mask, _, length = struct.unpack_from("iIII", data, offset)
                count += bool(mask & (_IN_OPEN | _IN_ACCESS))
                offset += 16 + length

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture(scope="session")
def tiny_onnx(tiny_ir, tmp_path_factory) -> Path:
    from emsdeploy.exporters.onnx import export_onnx
    from emsdeploy.ir import read_ir

    path = tmp_path_factory.mktemp("fio_onnx") / "tiny.onnx"
    export_onnx(read_ir(tiny_ir), path, spikes=True)
    return path


@pytest.fixture(scope="session")
def tiny_lava(tiny_ir, tmp_path_factory) -> Path:
    from emsdeploy.exporters.lava import export
    from emsdeploy.ir import read_ir

    out = tmp_path_factory.mktemp("fio_lava") / "net"
    export(read_ir(tiny_ir), out, fmt="dag")
    return out
