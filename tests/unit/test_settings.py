"""One settings object reads every variable (services/common/settings.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.common.settings import Settings

pytestmark = pytest.mark.unit


def test_the_process_variables_are_read_by_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_INSTANCE_ID", "3")
    monkeypatch.setenv("LEDGER_LOG_LEVEL", "debug")
    monkeypatch.setenv("LEDGER_REPLAY_BATCH", "500")
    monkeypatch.setenv("LEDGER_LOCAL_DIR", "/tmp/ledger-local")
    settings = Settings()
    assert settings.ledger_instance_id == "3"
    assert settings.ledger_log_level == "debug"
    assert settings.ledger_replay_batch == 500
    assert settings.ledger_local_dir == Path("/tmp/ledger-local")


def test_defaults_leave_every_fault_point_disarmed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LEDGER_FAULT", "LEDGER_REPLAY_BATCH", "LEDGER_INSTANCE_ID"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert not settings.fault_armed("projector:after_db_commit")
    assert settings.ledger_replay_batch is None and settings.ledger_instance_id == "0"


def test_several_fault_points_may_be_armed_at_once() -> None:
    settings = Settings(ledger_fault="projector:after_db_commit,rebuild:after_first_batch")
    assert settings.fault_armed("rebuild:after_first_batch")
    assert settings.fault_armed("projector:after_db_commit")
    assert not settings.fault_armed("rebuild")


def test_a_replay_batch_below_one_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(ledger_replay_batch=0)
