"""The version comes from pyproject.toml alone: the CLI and /healthz report that one."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from services import __version__
from services.api.models import Health
from services.cli import main

pytestmark = pytest.mark.unit

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_package_version_is_pyprojects() -> None:
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["version"]
    assert __version__ == declared


def test_cli_and_health_report_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"ledger {__version__}"
    assert Health().version == __version__
