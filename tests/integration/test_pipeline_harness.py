"""The pipeline harness's own check: its waits see what they wait for."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.settings import Settings
from tests.integration.pipeline_harness import (
    BALANCES,
    grant_accounts,
    pipeline,
    publish_usage,
    rows,
    wait_journal,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def test_the_pipeline_projects_grants_and_usage(
    isolated_settings: Settings, tmp_path: Path
) -> None:
    with pipeline(isolated_settings, tmp_path):
        await grant_accounts(isolated_settings, 5)
        await publish_usage(isolated_settings, 500, accounts=5)
        await wait_journal(isolated_settings, 505)
    assert len(await rows(isolated_settings, BALANCES)) == 5
    assert await rows(isolated_settings, "SELECT count(*) FROM ledger.journal") == [(505,)]
