"""The Grafana dashboards as the stacks deploy them: JSON that Grafana's file provisioning can
import, every panel querying the provisioned Prometheus datasource with PromQL that parses, and
the provider pointed at the directory the dashboards are mounted in."""

from __future__ import annotations

import json
import posixpath
import re

import promql_parser
import pytest
import yaml

from tests.support.deployed import deployed_files

DASHBOARDS_DIR_KEY = "/etc/grafana/provisioning/dashboards/safeguard.yaml"
DATASOURCES_KEY = "/etc/grafana/provisioning/datasources/prometheus.yaml"
UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
GRID_COLUMNS = 24


def dashboards(stack: str) -> dict[str, dict]:
    files = deployed_files(stack)
    provider = yaml.safe_load(files[DASHBOARDS_DIR_KEY])["providers"][0]
    directory = provider["options"]["path"]
    return {
        path: json.loads(text)
        for path, text in files.items()
        if posixpath.dirname(path) == directory and path.endswith(".json")
    }


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_the_provider_finds_the_dashboards(stack: str) -> None:
    found = dashboards(stack)
    assert len(found) >= 2, f"no dashboards in the provider's directory: {sorted(found)}"


@pytest.mark.parametrize("stack", ["dev", "production"])
def test_dashboards_have_what_grafana_needs_to_import_them(stack: str) -> None:
    datasources = yaml.safe_load(deployed_files(stack)[DATASOURCES_KEY])["datasources"]
    provisioned = {(d["type"], d["uid"]) for d in datasources}
    found = dashboards(stack)
    uids = [d.get("uid") for d in found.values()]
    titles = [d.get("title") for d in found.values()]
    assert len(set(uids)) == len(uids) and len(set(titles)) == len(titles)
    for path, dashboard in found.items():
        assert UID.match(dashboard["uid"]), path
        assert dashboard["title"].strip(), path
        assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
        assert "id" not in dashboard or dashboard["id"] is None, "ids belong to one Grafana"
        panel_ids = [p["id"] for p in dashboard["panels"]]
        assert len(set(panel_ids)) == len(panel_ids), path
        for panel in dashboard["panels"]:
            where = f"{path}: {panel.get('title')}"
            assert panel["type"] and panel["title"], where
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= GRID_COLUMNS
            assert (panel["datasource"]["type"], panel["datasource"]["uid"]) in provisioned, where
            assert panel["targets"], where
            ref_ids = [t["refId"] for t in panel["targets"]]
            assert len(set(ref_ids)) == len(ref_ids), where
            for target in panel["targets"]:
                promql_parser.parse(target["expr"])  # raises on invalid PromQL
                if "datasource" in target:
                    assert target["datasource"] == panel["datasource"], where


def test_invalid_promql_is_refused_by_the_parser() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(http_requests_total[5m])")
