"""The alert rules Prometheus gets, checked by promtool: `check rules`, and the unit tests in
components/files/alerts/tests/ (one file per rule file) run against the deployed rule text.
Every alert must have a case where it fires with its labels and annotations, and every alert
that depends on a series a case where it stays quiet."""

from __future__ import annotations

import shutil
from pathlib import Path

import promql_parser
import pytest
import yaml

from components.common import FILES
from components.prometheus import RULES_DIR
from tests.support.deployed import deployed_files
from tests.support.programs import Run

RULE_TESTS = FILES / "alerts" / "tests"


def deployed_rules(stack: str = "production") -> dict[str, str]:
    """Rule files as Prometheus receives them, by file name."""
    prefix = f"{RULES_DIR}/"
    return {
        path.removeprefix(prefix): text
        for path, text in deployed_files(stack).items()
        if path.startswith(prefix)
    }


def alerts() -> dict[str, dict]:
    """Every alert rule, by name (names are unique across files)."""
    found: dict[str, dict] = {}
    for file, text in deployed_rules().items():
        for group in yaml.safe_load(text)["groups"]:
            for rule in group["rules"]:
                assert rule["alert"] not in found, f"{rule['alert']} is defined twice"
                found[rule["alert"]] = rule | {"file": file}
    return found


def rule_test_files() -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(RULE_TESTS.glob("*.yaml"))}


@pytest.fixture(scope="module")
def deployed_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deployed rule files with the unit tests beside them in tests/, as in the repo."""
    root = tmp_path_factory.mktemp("rules")
    for name, text in deployed_rules().items():
        (root / name).write_text(text)
    shutil.copytree(RULE_TESTS, root / "tests")
    return root


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_promtool_checks_the_deployed_rules(stack: str, tmp_path: Path, promtool: Run) -> None:
    rules = deployed_rules(stack)
    assert rules, "the stack deploys no rule files"
    for name, text in rules.items():
        (tmp_path / name).write_text(text)
    result = promtool("check", "rules", *sorted(str(tmp_path / name) for name in rules))
    assert result.returncode == 0, result.stdout + result.stderr
    total = sum(len(g["rules"]) for t in rules.values() for g in yaml.safe_load(t)["groups"])
    found = sum(int(n) for n in _counts(result.stdout))
    assert found == total


def _counts(output: str) -> list[str]:
    return [line.split()[1] for line in output.splitlines() if "SUCCESS:" in line]


def test_promtool_unit_tests_pass_on_the_deployed_rules(deployed_tree: Path, promtool: Run) -> None:
    files = sorted(str(p) for p in (deployed_tree / "tests").glob("*.yaml"))
    result = promtool("test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files), result.stdout


def test_unit_tests_cover_each_rule_file_and_load_no_other() -> None:
    loaded = {
        Path(rule_file).name
        for spec in rule_test_files().values()
        for rule_file in spec["rule_files"]
    }
    assert loaded == set(deployed_rules())


def test_every_alert_has_a_firing_case_and_a_quiet_case() -> None:
    fires: dict[str, list[dict]] = {}
    quiet: set[str] = set()
    for spec in rule_test_files().values():
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fires.setdefault(check["alertname"], []).extend(check["exp_alerts"])
                else:
                    quiet.add(check["alertname"])
    for name, rule in alerts().items():
        assert name in fires, f"{name} ({rule['file']}) has no promtool test where it fires"
        for expected in fires[name]:
            # The routing label and the texts a human reads are part of what is tested.
            assert expected["exp_labels"]["severity"] == rule["labels"]["severity"], name
            assert set(expected["exp_annotations"]) >= {"summary", "description"}, name
        if _reads_series(rule["expr"]):
            assert name in quiet, f"{name} has no promtool test where it stays quiet"


def _reads_series(expr: str) -> bool:
    found = False

    def visit(node: object) -> None:
        nonlocal found
        found = found or isinstance(node, promql_parser.VectorSelector)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def test_a_wrong_expectation_fails(deployed_tree: Path, tmp_path: Path, promtool: Run) -> None:
    # The unit tests compare annotations exactly; a changed text must fail them.
    spec = yaml.safe_load((deployed_tree / "tests" / "availability.yaml").read_text())
    check = next(c for t in spec["tests"] for c in t["alert_rule_test"] if c["exp_alerts"])
    check["exp_alerts"][0]["exp_annotations"]["summary"] += " (changed)"
    spec["rule_files"] = [str(deployed_tree / "availability.yaml")]
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(spec))
    result = promtool("test", "rules", str(broken))
    assert result.returncode != 0 and "(changed)" in result.stdout + result.stderr
