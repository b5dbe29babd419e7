"""`ledger backup`'s manifest and what `ledger restore` checks before it loads anything
(services/common/backup.py); the loading itself is tests/e2e/test_backup_restore.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common import backup
from services.common.backup import Manifest, TableCopy, VerificationError, refusals, verify
from services.common.migrations import plan


def written(folder: Path, files: dict[str, str]) -> Manifest:
    """A backup folder of `files` (table -> CSV text) and its manifest."""
    copies = []
    for table, text in files.items():
        path = folder / backup.file_name(table)
        path.write_text(text)
        rows = text.count("\n") - 1
        copies.append(TableCopy(table, path.name, ["a", "b"], rows, backup.digest(path)))
    migrations = [{"component": m.component.name, "version": m.version} for m in plan()]
    manifest = Manifest(backup.FORMAT, "1.0", "2026-01-01T00:00:00+00:00", migrations, copies)
    (folder / backup.MANIFEST).write_text(manifest.dumps())
    return manifest


FILES = {"ledger.api_keys": "a,b\n1,2\n", "holds.holds": "a,b\n"}


def test_an_untouched_backup_verifies_and_its_manifest_reads_back(tmp_path: Path) -> None:
    manifest = written(tmp_path, FILES)
    assert verify(tmp_path) == manifest


def test_a_changed_file_is_refused(tmp_path: Path) -> None:
    written(tmp_path, FILES)
    (tmp_path / "ledger.api_keys.csv").write_text("a,b\n1,3\n")
    with pytest.raises(VerificationError, match=r"ledger\.api_keys\.csv: SHA-256 differs"):
        verify(tmp_path)


def test_a_missing_file_or_manifest_is_refused(tmp_path: Path) -> None:
    written(tmp_path, FILES)
    (tmp_path / "holds.holds.csv").unlink()
    with pytest.raises(VerificationError, match=r"holds\.holds\.csv: missing"):
        verify(tmp_path)
    (tmp_path / backup.MANIFEST).unlink()
    with pytest.raises(VerificationError, match="unfinished"):
        verify(tmp_path)


def test_a_manifest_naming_a_file_outside_the_folder_is_refused(tmp_path: Path) -> None:
    manifest = written(tmp_path, FILES)
    (tmp_path / "outside.csv").write_text("a,b\n")
    inner = tmp_path / "inner"
    inner.mkdir()
    escaping = TableCopy("ledger.api_keys", "../outside.csv", ["a"], 0, manifest.tables[1].sha256)
    forged = Manifest(manifest.format, "1.0", manifest.taken_at, manifest.migrations, [escaping])
    (inner / backup.MANIFEST).write_text(forged.dumps())
    with pytest.raises(VerificationError, match="missing"):
        verify(inner)


@pytest.mark.parametrize("text", ["not json", "{}", '{"format": 2, "tables": []}'])
def test_a_manifest_that_is_not_one_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / backup.MANIFEST).write_text(text)
    with pytest.raises(VerificationError, match=r"manifest|format"):
        verify(tmp_path)


def test_a_later_releases_tables_and_migrations_are_named() -> None:
    manifest = Manifest(
        backup.FORMAT,
        "9.0",
        "2026-01-01T00:00:00+00:00",
        [{"component": "api", "version": 1, "name": "001_keys_and_claims.sql"},
         {"component": "budgets", "version": 1, "name": "001_budgets.sql"}],
        [TableCopy("budgets.budgets", "budgets.budgets.csv", ["a"], 0, "")],
    )  # fmt: skip
    assert refusals(manifest, ["ledger.api_keys"], [("api", 1)]) == (
        "tables this release does not have: budgets.budgets; "
        "migrations this release does not have: budgets 001_budgets.sql"
    )
    known = [*backup.backed_up_tables(), "budgets.budgets"]
    assert refusals(manifest, known, [("api", 1), ("budgets", 1)]) == ""


def test_every_owner_lists_its_tables_once() -> None:
    tables = backup.backed_up_tables()
    assert len(tables) == len(set(tables))
    assert {"ledger.api_keys", "ledger.idempotency_keys", "holds.holds"} <= set(tables)
    assert all(t.count(".") == 1 and not t.startswith("ledger.journal") for t in tables)
