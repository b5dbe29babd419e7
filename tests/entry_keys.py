"""The test session's entry signing key pair, one per session (docs/operations.md, Entry
signing keys).

Imported by tests/conftest.py before anything reads the settings: the pair is written to a
temporary directory and named in LEDGER_ENTRY_SIGNING_KEY / LEDGER_ENTRY_VERIFY_KEYS, so
every Settings of the session, every in-process app and every child process
(Settings.service_environment) signs and verifies with it. The factories sign with it too.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from schemas.entry_signing import read_signing_key, read_verify_keys
from services.common.entry_keys import write_pair

DIRECTORY = Path(tempfile.mkdtemp(prefix="ledger-test-entry-keys-"))
PRIVATE, PUBLIC, KEY_ID = write_pair(DIRECTORY)
SIGNING_KEY = read_signing_key(PRIVATE)
VERIFY_KEYS = read_verify_keys([PUBLIC])
os.environ["LEDGER_ENTRY_SIGNING_KEY"] = str(PRIVATE)
os.environ["LEDGER_ENTRY_VERIFY_KEYS"] = str(PUBLIC)
atexit.register(shutil.rmtree, DIRECTORY, True)
