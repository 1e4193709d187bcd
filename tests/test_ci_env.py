"""Missing fixtures and a missing shipped checkpoint skip locally but fail under any truthy CI."""

from __future__ import annotations

import pytest

from tests import conftest


@pytest.mark.parametrize("value", ["true", "1", "yes", "True", "on", "github-actions"])
def test_truthy_ci_values_count_as_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    assert conftest.under_ci()


@pytest.mark.parametrize("value", [None, "", "0", "false", "FALSE", "no", "off"])
def test_unset_or_false_ci_is_local(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not conftest.under_ci()


def test_missing_fixtures_fail_under_ci_1(monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="required under CI"):
        conftest._require(tmp_path / "nope")


def test_missing_fixtures_skip_locally(monkeypatch, tmp_path):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        conftest._require(tmp_path / "nope")


def test_missing_shipped_checkpoint_fails_under_ci(monkeypatch, tmp_path):
    monkeypatch.setenv("CI", "1")
    monkeypatch.setattr(conftest, "SHIPPED", tmp_path / "emsyolo-tiny-synth.pt")
    with pytest.raises(pytest.fail.Exception, match="shipped checkpoint"):
        conftest.shipped_checkpoint()

