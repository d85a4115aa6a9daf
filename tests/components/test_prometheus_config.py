"""prometheus.yml as each stack deploys it, checked by `promtool check config` (which also checks
the rule files it loads).

Two things differ on a test machine, and only those are changed in the copy under test:
- the in-cluster files the node discovery and the kubelet/cAdvisor jobs read (the ServiceAccount
  token and CA the server mounts) do not exist here, and promtool checks that they do: they are
  created in a temp dir and the paths pointed there;
- Debian's Prometheus is built without Kubernetes service discovery ("Kubernetes support has been
  completely removed" in its NEWS.Debian since 1.5.0+ds; promtool 2.42+ds says "field
  kubernetes_sd_configs not found in type config.ScrapeConfig"). When the local promtool lacks
  it, each `kubernetes_sd_configs` block is checked here against the upstream schema and replaced
  by a static target, so the rest of the job (TLS, authorization, relabelling) is still checked
  by promtool. With an upstream promtool nothing is replaced.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pytest
import yaml

from components.prometheus import API_SERVER, API_TOKEN_DIR, RULES_DIR
from tests.support.deployed import deployed_files
from tests.support.programs import Run

SERVICE_ACCOUNT = API_TOKEN_DIR
# Meta labels that kubernetes_sd_configs role node sets (upstream docs).
NODE_META_PREFIX = "__meta_kubernetes_node_"


@functools.cache
def promtool_has_kubernetes_sd(promtool: Run) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe.yml"
        probe.write_text(
            "scrape_configs:\n- job_name: p\n  kubernetes_sd_configs:\n  - role: node\n"
        )
        return promtool("check", "config", str(probe)).returncode == 0


def for_this_machine(config: dict, root: Path, promtool: Run) -> dict:
    """A copy of `config` that promtool can check here (see the module docstring)."""
    text = yaml.safe_dump(config)
    text = text.replace(f"{RULES_DIR}/", f"{root}/rules/")
    text = text.replace(SERVICE_ACCOUNT, str(root / "serviceaccount"))
    copy = yaml.safe_load(text)
    if not promtool_has_kubernetes_sd(promtool):
        for job in copy["scrape_configs"]:
            if job.pop("kubernetes_sd_configs", None) is not None:
                job["static_configs"] = [{"targets": ["kubernetes.default.svc:443"]}]
    return copy


def write_tree(stack: str, root: Path, promtool: Run) -> Path:
    files = deployed_files(stack)
    (root / "rules").mkdir(parents=True)
    for path, text in files.items():
        if path.startswith(f"{RULES_DIR}/"):
            (root / "rules" / Path(path).name).write_text(text)
    (root / "serviceaccount").mkdir()
    (root / "serviceaccount" / "token").write_text("test-token\n")
    (root / "serviceaccount" / "ca.crt").write_text("")
    config = yaml.safe_load(files["/etc/prometheus/prometheus.yml"])
    target = root / "prometheus.yml"
    target.write_text(yaml.safe_dump(for_this_machine(config, root, promtool)))
    return target


@pytest.mark.parametrize("stack", ["dev", "staging", "production"])
def test_promtool_accepts_the_deployed_config_and_its_rules(
    stack: str, tmp_path: Path, promtool: Run
) -> None:
    result = promtool("check", "config", str(write_tree(stack, tmp_path, promtool)))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    rule_files = sorted((tmp_path / "rules").glob("*.yaml"))
    assert rule_files
    for rule_file in rule_files:
        assert f"Checking {rule_file}" in output, output  # the rule_files glob matched them


def test_promtool_rejects_a_config_with_a_missing_token(tmp_path: Path, promtool: Run) -> None:
    # The token path is really checked, so creating the file above is what makes it pass.
    config = write_tree("production", tmp_path, promtool)
    (tmp_path / "serviceaccount" / "token").unlink()
    result = promtool("check", "config", str(config))
    assert result.returncode != 0 and "token" in result.stdout + result.stderr


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_kubernetes_sd_jobs_follow_the_upstream_schema(stack: str) -> None:
    # What Debian's promtool cannot check about the kubelet and cAdvisor jobs.
    config = yaml.safe_load(deployed_files(stack)["/etc/prometheus/prometheus.yml"])
    jobs = [j for j in config["scrape_configs"] if "kubernetes_sd_configs" in j]
    assert {j["job_name"] for j in jobs} == {"kubelet", "cadvisor"}
    for job in jobs:
        for sd in job["kubernetes_sd_configs"]:
            # The HTTP client settings are inline in the SD config, and need `api_server`
            # (prometheus/prometheus discovery/kubernetes/kubernetes.go v2.54.1, SDConfig).
            allowed = {"role", "namespaces", "selectors", "api_server", "authorization"}
            assert set(sd) <= allowed | {"tls_config"}, job["job_name"]
            assert sd["role"] == "node"  # the kubelet runs per node
            assert sd["api_server"] == API_SERVER
            assert sd["authorization"] == {"credentials_file": f"{SERVICE_ACCOUNT}/token"}
            assert sd["tls_config"] == {"ca_file": f"{SERVICE_ACCOUNT}/ca.crt"}
        for relabel in job["relabel_configs"]:
            for label in relabel.get("source_labels", []):
                assert label.startswith(NODE_META_PREFIX), (job["job_name"], label)
        assert job["authorization"]["credentials_file"] == f"{SERVICE_ACCOUNT}/token"
        assert job["tls_config"]["ca_file"] == f"{SERVICE_ACCOUNT}/ca.crt"
