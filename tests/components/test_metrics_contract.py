"""Every metric an alert rule or a dashboard reads exists: the app's in a live scrape of the running
app, the exporters' in tests/fixtures/exporter_metrics.yaml (names each exporter documents, for
the image the stack deploys). Renaming a metric on one side only fails here.

PromQL is parsed with promql-parser (the Rust parser of GreptimeDB, as Python wheels), so
functions, keywords, label matchers and strings are never mistaken for metric names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from components.grafana import dashboard_files
from components.prometheus import alert_rule_files
from tests.support.deployed import deployed_files, stack_run
from tests.support.mocks import containers, pod_specs
from tests.support.servers import LiveApp

EXPORTERS = yaml.safe_load(
    (Path(__file__).parents[1] / "fixtures" / "exporter_metrics.yaml").read_text()
)["exporters"]


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: frozenset[str]
    """Label names the expression matches on."""
    where: str


def selectors(expr: str, where: str) -> list[Selector]:
    found: list[Selector] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = node.matchers.matchers
            name = node.name or next(m.value for m in matchers if m.name == "__name__")
            labels = frozenset(m.name for m in matchers if m.name != "__name__")
            found.append(Selector(name, labels, where))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def referenced() -> list[Selector]:
    """Every selector of every alert rule and dashboard query the components ship."""
    result = []
    for file, text in alert_rule_files().items():
        for group in yaml.safe_load(text)["groups"]:
            for rule in group["rules"]:
                result += selectors(rule["expr"], f"{file}: {rule['alert']}")
    for file, text in dashboard_files().items():
        for panel in json.loads(text)["panels"]:
            for target in panel.get("targets", []):
                result += selectors(target["expr"], f"{file}: {panel['title']}")
    return result


def test_the_parser_finds_metric_names_and_nothing_else() -> None:
    found = selectors(
        'sum by (le) (rate(a_bucket{status=~"5..", route!="x"}[5m])) / on (instance) '
        'group_left max without (pod) (b > 0) + {__name__="c", job="j"} '
        '+ label_replace(vector(1), "d", "$1", "e", "(.*)")',
        "inline",
    )
    assert {(s.metric, s.labels) for s in found} == {
        ("a_bucket", frozenset({"status", "route"})),
        ("b", frozenset()),
        ("c", frozenset({"job"})),
    }


@pytest.fixture(scope="module")
def app_samples(live_app: LiveApp) -> dict[str, set[str]]:
    """Sample name -> label names, from the live app's /metrics after real traffic."""
    with httpx.Client(base_url=live_app.base_url, timeout=10) as client:
        assert client.get("/api/v1/items").status_code == 200
        assert client.get("/health/ready").status_code == 200
        text = client.get("/metrics").text
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def test_every_metric_in_alerts_and_dashboards_is_exposed(app_samples: dict[str, set[str]]):
    documented = {m for e in EXPORTERS.values() for m in e["metrics"]}
    missing = sorted(
        f"{s.metric} ({s.where})"
        for s in referenced()
        if s.metric not in app_samples and s.metric not in documented
    )
    assert not missing, f"no app or exporter exposes: {missing}"


def test_app_metrics_are_matched_on_labels_the_app_sets(app_samples: dict[str, set[str]]):
    # A renamed label (status -> code) would leave an alert silently matching nothing.
    for s in referenced():
        if s.metric in app_samples:
            assert s.labels <= app_samples[s.metric], (s.where, s.metric, s.labels)


def test_the_exporter_list_does_not_mask_the_app(app_samples: dict[str, set[str]]):
    # If an app metric were also listed as an exporter's, renaming it in the app would pass.
    for name, exporter in EXPORTERS.items():
        assert not set(exporter["metrics"]) & set(app_samples), name


def test_every_listed_exporter_metric_is_used() -> None:
    # The list documents what the rules and dashboards need; stale names would hide renames.
    used = {s.metric for s in referenced()}
    for name, exporter in EXPORTERS.items():
        assert set(exporter["metrics"]) <= used, (name, set(exporter["metrics"]) - used)


def test_listed_exporters_are_the_deployed_versions_and_are_scraped() -> None:
    run = stack_run("production")
    images = {c["image"] for _, pod in pod_specs(run) for c, _ in containers(pod)}
    config = yaml.safe_load(deployed_files("production")["/etc/prometheus/prometheus.yml"])
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    for name, exporter in EXPORTERS.items():
        if exporter["image"]:
            assert exporter["image"] in images, f"{name}: the stack deploys {sorted(images)}"
        if exporter["job"]:
            assert exporter["job"] in jobs, f"{name}: no scrape job {exporter['job']!r}"
