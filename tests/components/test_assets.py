"""nginx.conf, alert rules, dashboards, Prometheus and Alertmanager configuration."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from components.alertmanager import alertmanager_config
from components.grafana import dashboard_files
from components.nginx import NginxConf, TlsFiles, render_nginx_conf
from components.prometheus import alert_rule_files
from tests.support.mocks import build_stack, unwrap


def test_nginx_conf_takes_paths_and_ports_as_parameters() -> None:
    text = render_nginx_conf(
        NginxConf(
            upstream="127.0.0.1:18000",
            server_name="app.example.com",
            listen_port=18080,
            status_listen="127.0.0.1:18081",
            temp_dir="/tmp/t",
            pid_path="/tmp/t/nginx.pid",
        )
    )
    assert "pid /tmp/t/nginx.pid;" in text
    assert "server 127.0.0.1:18000;" in text
    assert "listen 18080;" in text and "listen 127.0.0.1:18081;" in text
    assert "proxy_temp_path /tmp/t/proxy;" in text
    assert render_nginx_conf(NginxConf(upstream="app:8000", server_name="a.example.com")) == (
        render_nginx_conf(NginxConf(upstream="app:8000", server_name="a.example.com"))
    )


def test_nginx_cors_allows_only_the_allowlist() -> None:
    origins = ("https://a.example.com", "http://localhost:8080")
    text = render_nginx_conf(
        NginxConf(upstream="app:8000", server_name="a.example.com", allowed_origins=origins)
    )
    cors_map = text.split("map $http_origin $cors_origin {")[1].split("}")[0]
    entries = [line.split()[0].strip('"') for line in cors_map.strip().splitlines()]
    assert entries[0] == "default"
    # One case-sensitive, anchored regular expression per origin, as the app compares them.
    patterns = [re.compile(entry.removeprefix("~")) for entry in entries[1:]]
    assert all(p.pattern.startswith("^") and p.pattern.endswith("$") for p in patterns)
    for pattern, origin in zip(patterns, origins, strict=True):
        assert pattern.fullmatch(origin)
        for near in (origin.upper(), origin.replace("a", "x"), origin + ".evil.example"):
            assert not pattern.fullmatch(near), near
    assert "*" not in cors_map
    with pytest.raises(ValueError, match="origin"):
        NginxConf(upstream="app:8000", server_name="a.example.com", allowed_origins=("*",))


def test_nginx_limits_identifies_and_answers_errors_in_json() -> None:
    text = render_nginx_conf(
        NginxConf(upstream="app:8000", server_name="a.example.com", rate_per_second=5, burst=7)
    )
    assert "rate=5r/s" in text and "burst=7" in text and "limit_req_status 429;" in text
    assert "map $http_x_request_id $req_id {" in text and "default $request_id;" in text
    assert "proxy_set_header X-Request-ID $req_id;" in text
    for status in (429, 502, 503, 504):
        assert f"error_page {status} = /_edge/error/{status};" in text
        body = text.split(f"return {status} '")[1].split("';")[0]
        assert json.loads(body.replace("$req_id", "x"))["error"]
    assert 'X-Frame-Options "DENY"' in text and "nosniff" in text
    assert "add_header Strict-Transport-Security" not in text


def test_nginx_tls_adds_hsts_and_redirects_plain_http() -> None:
    tls = TlsFiles(certificate="/etc/tls/tls.crt", key="/etc/tls/tls.key")
    text = render_nginx_conf(
        NginxConf(upstream="app:8000", server_name="a.example.com", tls=tls, hsts=True)
    )
    assert "listen 8443 ssl;" in text and "ssl_certificate /etc/tls/tls.crt;" in text
    assert "add_header Strict-Transport-Security" in text and "return 308 https://" in text


def test_every_alert_is_complete_and_the_required_ones_exist() -> None:
    exprs: dict[str, str] = {}
    for name, text in alert_rule_files().items():
        groups = yaml.safe_load(text)["groups"]
        assert len(groups) == 1, name
        for rule in groups[0]["rules"]:
            assert rule["labels"]["severity"], rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            assert "for" in rule, rule["alert"]
            exprs[rule["alert"]] = rule["expr"]
    assert exprs["Watchdog"] == "vector(1)"
    everything = "\n".join(exprs.values())
    for needle in (
        "up == 0",
        "pg_up == 0",
        "redis_up == 0",
        'status=~"5.."',
        "histogram_quantile(0.95",
        "db_pool_checked_out_connections / db_pool_size",
        "container_spec_memory_limit_bytes",
        "container_spec_cpu_quota",
        "kubelet_volume_stats_available_bytes",
    ):
        assert needle in everything, needle


def test_dashboards_query_prometheus_in_every_panel() -> None:
    dashboards = {name: json.loads(text) for name, text in dashboard_files().items()}
    assert set(dashboards) == {"service-overview.json", "dependencies.json"}
    assert len({d["uid"] for d in dashboards.values()}) == 2
    for dashboard in dashboards.values():
        assert dashboard["title"] and dashboard["panels"]
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == "prometheus"
            assert all(t["expr"] for t in panel["targets"]) and panel["targets"]


def test_prometheus_scrapes_every_exporter_and_loads_the_rules() -> None:
    run = build_stack("production")
    config_maps = {
        r.inputs["metadata"]["name"]: r.inputs["data"] for r in run.of_type("core/v1:ConfigMap")
    }
    config = yaml.safe_load(config_maps["monitoring-prometheus-config"]["prometheus.yml"])
    targets = {
        j["job_name"]: j.get("static_configs", [{}])[0].get("targets")
        for j in config["scrape_configs"]
    }
    assert targets["app"] == ["app:8000"] and targets["nginx"] == ["nginx:9113"]
    assert targets["postgres"] == ["postgres:9187"] and targets["redis"] == ["redis:9121"]
    assert targets["prometheus"] == ["127.0.0.1:9090"]
    assert {"kubelet", "cadvisor"} <= set(targets)
    assert config_maps["monitoring-prometheus-rules"] == alert_rule_files()


def test_alertmanager_routes_severities_to_webhooks_kept_secret() -> None:
    hook = "https://hooks.example.com/critical-0123456789"
    run = build_stack(
        "production",
        alertWebhookCritical=hook,
        alertWebhookWarning="https://hooks.example.com/warning",
    )
    secret = next(
        r
        for r in run.of_type("core/v1:Secret")
        if r.inputs["metadata"]["name"] == "monitoring-alertmanager-config"
    )
    config = yaml.safe_load(unwrap(secret.inputs["stringData"])["alertmanager.yml"])
    routes = {r["matchers"][0]: r["receiver"] for r in config["route"]["routes"]}
    assert routes['severity="critical"'] == "critical" and routes['severity="warning"'] == "warning"
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["critical"]["webhook_configs"][0]["url"] == hook
    for r in run.resources:
        if r.custom and r is not secret:
            assert hook not in json.dumps(unwrap(r.inputs)), r.name


def test_alertmanager_without_webhooks_sends_nowhere() -> None:
    config = alertmanager_config(None, None)
    assert config["route"]["receiver"] == "null"
    assert [r["name"] for r in config["receivers"]] == ["null"]
