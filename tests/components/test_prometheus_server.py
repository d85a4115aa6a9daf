"""A real Prometheus and Alertmanager on the configuration the dev stack deploys, scraping the
real app: the app's request metrics arrive, the deployed rules load and evaluate, and an alert
travels to Alertmanager with the stack's labels.

Changed in the copy under test, and nothing else: target addresses (loopback ports instead of
container names), the rules path, and 1s scrape and evaluation intervals so the test is quick.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
import yaml

from components.prometheus import RULES_DIR
from tests.support.deployed import deployed_files
from tests.support.servers import (
    AlertmanagerServer,
    LiveApp,
    PrometheusServer,
    eventually,
    free_port,
    new_temp_root,
)

STACK = "dev"
WEBHOOKS = {"alertWebhookCritical": "http://127.0.0.1:9/critical"}


@pytest.fixture(scope="module")
def alertmanager(alertmanager_binary: str) -> Iterator[AlertmanagerServer]:
    root = new_temp_root("safeguard-am-")
    server = AlertmanagerServer(
        root=root, config=deployed_files(STACK, **WEBHOOKS)["/etc/alertmanager/alertmanager.yml"]
    )
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def prometheus(
    live_app: LiveApp, alertmanager: AlertmanagerServer, prometheus_binary: str
) -> Iterator[PrometheusServer]:
    root = new_temp_root("safeguard-prom-")
    files = deployed_files(STACK, **WEBHOOKS)
    (root / "rules").mkdir()
    for path, text in files.items():
        if path.startswith(f"{RULES_DIR}/"):
            (root / "rules" / path.rsplit("/", 1)[1]).write_text(text)
    config = yaml.safe_load(files["/etc/prometheus/prometheus.yml"])
    port = free_port()
    loopback = {
        "app": f"127.0.0.1:{live_app.port}",
        "prometheus": f"127.0.0.1:{port}",
        "alertmanager": f"127.0.0.1:{alertmanager.port}",
    }
    for job in config["scrape_configs"]:
        if job["job_name"] in loopback:
            job["static_configs"] = [{"targets": [loopback[job["job_name"]]]}]
        else:
            # No exporters run here: a port nothing listens on, so their targets are down.
            job["static_configs"] = [{"targets": [f"127.0.0.1:{free_port()}"]}]
    config["alerting"]["alertmanagers"] = [
        {"static_configs": [{"targets": [loopback["alertmanager"]]}]}
    ]
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [f"{root}/rules/*.yaml"]
    server = PrometheusServer(
        root=root,
        config=yaml.safe_dump(config),
        port=port,
        # Alertmanager is only discovered a few seconds after start, and an alert sent before
        # that is dropped; by default it is sent again a minute later.
        flags=("--rules.alert.resend-delay=1s",),
    )
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_prometheus_scrapes_the_apps_request_metrics(
    prometheus: PrometheusServer, live_app: LiveApp
) -> None:
    with httpx.Client(base_url=live_app.base_url, timeout=10) as client:
        for _ in range(3):
            assert client.get("/api/v1/items/999999").status_code == 404
    query = 'http_requests_total{job="app", route="/api/v1/items/{item_id}", status="404"}'
    series = eventually(
        lambda: [s for s in prometheus.query(query) if float(s["value"][1]) >= 3],
        what=query,
    )
    assert series[0]["metric"]["method"] == "GET"
    for job in ("app", "prometheus", "alertmanager"):
        # Each target is scraped at its own offset within the interval.
        up = eventually(lambda job=job: prometheus.query(f'up{{job="{job}"}}'), what=job)
        assert up[0]["value"][1] == "1", job
    buckets = prometheus.query('http_request_duration_seconds_bucket{job="app", le="+Inf"}')
    assert buckets, "the latency histogram the dashboards and HighLatencyP95 read is missing"


def test_the_deployed_rules_load_and_evaluate(prometheus: PrometheusServer) -> None:
    expected = {
        group["name"]: [rule["alert"] for rule in group["rules"]]
        for path, text in deployed_files(STACK, **WEBHOOKS).items()
        if path.startswith(f"{RULES_DIR}/")
        for group in yaml.safe_load(text)["groups"]
    }

    def evaluated() -> dict | None:
        groups = prometheus.api("rules")["groups"]
        if all(g["lastEvaluation"] > "0001-01-01T00:00:00Z" for g in groups):
            return {g["name"]: g for g in groups}
        return None

    groups = eventually(evaluated, what="every rule group evaluated")
    assert {name: [r["name"] for r in g["rules"]] for name, g in groups.items()} == expected
    for group in groups.values():
        for rule in group["rules"]:
            assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))


def test_target_down_watches_the_real_up_series(prometheus: PrometheusServer) -> None:
    def pending_jobs() -> set[str]:
        alerts = prometheus.api("alerts")["alerts"]
        return {a["labels"]["job"] for a in alerts if a["labels"]["alertname"] == "TargetDown"}

    # The exporters do not run here; app, prometheus and alertmanager do.
    absent = {"nginx", "postgres", "redis"}
    eventually(lambda: pending_jobs() >= absent, what="TargetDown for the absent exporters")
    assert pending_jobs() == absent


def test_alerts_reach_alertmanager_with_the_stack_label(
    prometheus: PrometheusServer, alertmanager: AlertmanagerServer
) -> None:
    def watchdog() -> list[dict]:
        return [a for a in alertmanager.alerts() if a["labels"]["alertname"] == "Watchdog"]

    alert = eventually(watchdog, timeout=20, what="Watchdog in Alertmanager")[0]
    config = yaml.safe_load(deployed_files(STACK, **WEBHOOKS)["/etc/prometheus/prometheus.yml"])
    environment = config["global"]["external_labels"]["environment"]
    assert alert["labels"]["environment"] == environment == "development"
    assert alert["labels"]["severity"] == "none"
    assert [r["name"] for r in alert["receivers"]] == ["null"]
