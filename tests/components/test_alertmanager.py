"""alertmanager.yml as the stacks deploy it (from the mocks-recorded Secret or Docker upload),
checked by amtool: `check-config`, and `config routes test` for every alert the rules define."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from components.prometheus import alert_rule_files
from tests.support.deployed import deployed_files
from tests.support.programs import Run

CONFIG = "/etc/alertmanager/alertmanager.yml"
# Placeholders of the shape the stacks get from `pulumi config set --secret`, never reached.
WEBHOOKS = {
    "alertWebhookCritical": "http://127.0.0.1:9/critical",
    "alertWebhookWarning": "http://127.0.0.1:9/warning",
}


def rule_labels() -> dict[str, dict[str, str]]:
    """The labels each alert reaches Alertmanager with, by alert name."""
    labels = {}
    for text in alert_rule_files().values():
        for group in yaml.safe_load(text)["groups"]:
            for rule in group["rules"]:
                labels[rule["alert"]] = {"alertname": rule["alert"], **rule["labels"]}
    return labels


def written(stack: str, tmp_path: Path, **overrides: str) -> Path:
    path = tmp_path / "alertmanager.yml"
    path.write_text(deployed_files(stack, **overrides)[CONFIG])
    return path


@pytest.mark.parametrize("webhooks", [True, False], ids=["webhooks", "no-webhooks"])
@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_amtool_accepts_the_deployed_config(
    stack: str, webhooks: bool, tmp_path: Path, amtool: Run
) -> None:
    config = written(stack, tmp_path, **(WEBHOOKS if webhooks else {}))
    result = amtool("check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_rejects_a_route_to_an_unknown_receiver(tmp_path: Path, amtool: Run) -> None:
    config = written("production", tmp_path, **WEBHOOKS)
    data = yaml.safe_load(config.read_text())
    data["route"]["routes"][0]["receiver"] = "nobody"
    config.write_text(yaml.safe_dump(data))
    assert amtool("check-config", str(config)).returncode != 0


def expected_receiver(labels: dict[str, str], webhooks: bool) -> str:
    if labels["alertname"] == "Watchdog" or not webhooks:
        return "null"
    return labels["severity"]


@pytest.mark.parametrize("webhooks", [True, False], ids=["webhooks", "no-webhooks"])
def test_every_alert_is_routed_by_severity(webhooks: bool, tmp_path: Path, amtool: Run) -> None:
    config = written("production", tmp_path, **(WEBHOOKS if webhooks else {}))
    labels = rule_labels()
    assert {v["severity"] for v in labels.values()} == {"critical", "warning", "none"}
    for name, alert in labels.items():
        receiver = expected_receiver(alert, webhooks)
        result = amtool(
            "config", "routes", "test", f"--config.file={config}",
            f"--verify.receivers={receiver}", *(f"{k}={v}" for k, v in alert.items()),
        )  # fmt: skip
        assert result.returncode == 0, (name, receiver, result.stdout, result.stderr)
        assert result.stdout.strip() == receiver, name


def test_routing_is_really_verified(tmp_path: Path, amtool: Run) -> None:
    # --verify.receivers makes amtool fail on a mismatch; otherwise the loop above proves nothing.
    config = written("production", tmp_path, **WEBHOOKS)
    result = amtool(
        "config", "routes", "test", f"--config.file={config}",
        "--verify.receivers=warning", "alertname=PostgresDown", "severity=critical",
    )  # fmt: skip
    assert result.returncode != 0
