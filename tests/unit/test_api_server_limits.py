"""The API's connection limits (services/api/server.py): the cap never exceeds what the
process's open-file limit allows, and the limit is raised to the hard one at start."""

from __future__ import annotations

import resource

from services.api.server import RESERVED_FILES, connection_limits, raise_file_limit
from services.common.settings import Settings


def test_the_cap_is_lowered_to_the_file_limit() -> None:
    settings = Settings(ledger_api_max_connections=10_000)
    assert connection_limits(settings, 1_024).max_connections == 1_024 - RESERVED_FILES
    assert connection_limits(settings, 1_000_000).max_connections == 10_000


def test_timeouts_come_from_the_settings() -> None:
    settings = Settings(ledger_api_header_timeout_seconds=2, ledger_api_idle_timeout_seconds=7)
    limits = connection_limits(settings, 65_536)
    assert (limits.header_timeout, limits.idle_timeout) == (2, 7)


def test_the_soft_file_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 512), hard))
        raised = raise_file_limit()
        assert raised == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert raised >= min(soft, 512)
        if hard != resource.RLIM_INFINITY:
            assert raised == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
