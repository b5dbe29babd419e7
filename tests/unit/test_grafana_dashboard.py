"""The Grafana dashboard (infra/grafana/credit-ledger.json) is a dashboard Grafana imports,
and every metric its panels query is one a service exports, under the name Prometheus
stores (a counter's `_total`, a histogram's `_bucket`, `_sum`, `_count`)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from services.api.metrics import ApiMetrics
from services.gateway.litellm_callback import LedgerMetrics
from services.gateway.spool import SpoolMetrics

DASHBOARD = Path(__file__).parents[2] / "infra" / "grafana" / "credit-ledger.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# The series Prometheus stores for a metric of each type (prometheus_client names a
# counter's family without `_total`).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}

# PromQL words that look like identifiers but name no metric.
KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "atan2", "inf", "nan",
}  # fmt: skip
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
MATCHERS = re.compile(r"\{[^{}]*\}")  # label matchers: label names and values
RANGE = re.compile(r"\[[^\[\]]*\]")  # ranges and subqueries: [5m], [$__rate_interval:1m]
GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
VARIABLE = re.compile(r"\$\{?\w+\}?")  # Grafana's variables: $__rate_interval, ${datasource}
IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(?![\w:])(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers left once strings, label
    matchers, ranges, grouping labels and variables are removed, less functions (followed
    by `(`) and keywords. Numbers (0.99, 1e3) never start with a letter."""
    text = STRING.sub(" ", expr)
    text = MATCHERS.sub(" ", text)
    text = RANGE.sub(" ", text)
    text = GROUPING.sub(" ", text)
    text = VARIABLE.sub(" ", text)
    return {
        name for name, call in IDENTIFIER.findall(text) if not call and name.lower() not in KEYWORDS
    }


def families() -> dict[str, str]:
    """Every metric the services' registries export, by type, the registries built as the
    services build them (no I/O: the spool's age gauge is given a function)."""
    registries = [
        ApiMetrics().registry,
        LedgerMetrics(CollectorRegistry()).registry,
        SpoolMetrics(CollectorRegistry(), lambda: 0.0).registry,
    ]
    return {family.name: family.type for r in registries for family in r.collect()}


def exported() -> set[str]:
    """Every series name Prometheus stores of them."""
    return {name + suffix for name, kind in families().items() for suffix in SUFFIXES[kind]}


def query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel but rows, nested ones (in collapsed rows) included."""
    found = []
    for panel in dashboard["panels"]:
        found += panel.get("panels", [])
        if panel["type"] != "row":
            found.append(panel)
    return found


def unknown_metrics(dashboard: dict[str, Any]) -> dict[str, set[str]]:
    """Panel title -> the metrics it queries that no service exports."""
    known = exported()
    unknown = {}
    for panel in query_panels(dashboard):
        names = set().union(*(metric_names(t["expr"]) for t in panel["targets"]))
        if names - known:
            unknown[panel["title"]] = names - known
    return unknown


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_every_panel_queries_only_metrics_the_services_export(
    dashboard: dict[str, Any],
) -> None:
    assert unknown_metrics(dashboard) == {}


def test_every_exported_metric_has_a_panel(dashboard: dict[str, Any]) -> None:
    """A metric added to a service shows on the dashboard too."""
    queried = {
        name
        for panel in query_panels(dashboard)
        for target in panel["targets"]
        for name in metric_names(target["expr"])
    }
    shown = {
        name
        for name, kind in families().items()
        if any(name + suffix in queried for suffix in SUFFIXES[kind])
    }
    assert set(families()) - shown == set()


def test_a_panel_naming_an_unknown_metric_fails(dashboard: dict[str, Any]) -> None:
    changed = copy.deepcopy(dashboard)
    panel = query_panels(changed)[0]
    panel["targets"][0]["expr"] = 'sum(rate(ledger_seals_written_total{topic="x"}[5m]))'
    assert unknown_metrics(changed) == {panel["title"]: {"ledger_seals_written_total"}}
    # A counter without the `_total` Prometheus stores it under is unknown too.
    panel["targets"][0]["expr"] = "sum(rate(ledger_spool_sent[5m]))"
    assert unknown_metrics(changed) == {panel["title"]: {"ledger_spool_sent"}}


def test_every_panel_queries_some_metric(dashboard: dict[str, Any]) -> None:
    for panel in query_panels(dashboard):
        assert all(metric_names(t["expr"]) for t in panel["targets"]), panel["title"]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.99, sum by (le, route) (rate(a_seconds_bucket{route=~"/v1.*"}'
            "[$__rate_interval])))",
            {"a_seconds_bucket"},
        ),
        (
            "sum(rate(a_total[5m])) / sum without (instance) (rate(b_total[5m:1m])) > 1e3",
            {"a_total", "b_total"},
        ),
        ('max(delta(g{counter="applied"}[1h] offset 1h)) and on (job) up == bool 1', {"g", "up"}),
        ('label_replace(g, "dst", "$1", "src", "(.*)")', {"g"}),
        ("ledger:ratio:rate5m * Inf", {"ledger:ratio:rate5m"}),
    ],
)
def test_metric_names_skip_functions_labels_and_keywords(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_the_dashboard_has_the_shape_grafana_imports(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] and dashboard["title"]
    assert dashboard["schemaVersion"] >= 39
    [variable] = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "datasource", "datasource", "prometheus",
    )  # fmt: skip
    every = [
        *dashboard["panels"],
        *(p for row in dashboard["panels"] for p in row.get("panels", [])),
    ]
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    panels = query_panels(dashboard)
    assert panels
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
