"""How the migration runner finds and orders the components' files (services/common/
migrations.py): a numbered file in a component's folder is all a new migration takes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from services.common.migrations import (
    COMPONENTS,
    LIVE_SCHEMA,
    OLD_API_VERSION,
    OLD_NAMES,
    SERVICES,
    Component,
    MigrationFileError,
    discover,
    plan,
)

pytestmark = pytest.mark.unit


def test_the_live_schema_takes_every_component_in_order_and_a_shadow_the_projections() -> None:
    live = plan(LIVE_SCHEMA)
    order = [c.name for c in COMPONENTS]
    assert [order.index(m.component.name) for m in live] == sorted(
        order.index(m.component.name) for m in live
    )
    assert {m.component.name for m in live} == set(order)
    assert [m for m in live if m.component.per_projection] == plan("ledger_audit")
    for component in COMPONENTS:
        versions = [m.version for m in live if m.component is component]
        assert versions == sorted(versions) and len(set(versions)) == len(versions)


def test_every_name_of_the_previous_layout_maps_to_a_file_of_today() -> None:
    keys = {m.key for m in plan()}
    assert {key for targets in OLD_NAMES.values() for key in targets} | {OLD_API_VERSION} <= keys


def test_a_numbered_file_added_to_a_folder_is_picked_up_in_its_place(tmp_path: Path) -> None:
    component = Component("demo", tmp_path, per_projection=True)
    for name in ("002_second.sql", "010_tenth.sql", "001_first.sql", "README.md"):
        (tmp_path / name).write_text("SELECT 1;\n")
    assert [m.path.name for m in discover(component)] == [
        "001_first.sql",
        "002_second.sql",
        "010_tenth.sql",
    ]
    assert str(discover(component)[0]) == "demo 001_first.sql"


def test_two_files_with_one_number_stop_the_runner_naming_both(tmp_path: Path) -> None:
    component = Component("demo", tmp_path, per_projection=False)
    (tmp_path / "008_zero_credit_holds.sql").write_text("")
    (tmp_path / "008_redrive.sql").write_text("")
    with pytest.raises(MigrationFileError, match=r"008_redrive\.sql and .*008_zero_credit_holds"):
        discover(component)


@pytest.mark.parametrize("name", ["8_short.sql", "008-dash.sql", "008_Upper.sql", "008_.sql"])
def test_a_sql_file_named_otherwise_is_refused_not_skipped(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("")
    with pytest.raises(MigrationFileError, match=r"NNN_what\.sql"):
        discover(Component("demo", tmp_path, per_projection=False))


def test_the_wheel_ships_every_migration_folder() -> None:
    """pyproject's package-data must list each folder, or an installed service finds none."""
    pyproject = tomllib.loads((SERVICES.parent / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]
    for component in COMPONENTS:
        relative = component.folder.relative_to(SERVICES)
        package, folder = f"services.{relative.parts[0]}", Path(*relative.parts[1:])
        assert f"{folder.as_posix()}/*.sql" in shipped.get(package, []), component.name
