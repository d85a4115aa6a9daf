"""`python -m infra check --manifests` on input shaped like real projects' manifests: typed lists
(kube-prometheus), variant installs of one object (Argo CD's HA and plain installs, ingress-nginx's
cloud and bare-metal deploys), Helm charts and templates, and a render directory with its Docker
and random files. Every manifest is written here; none is read from elsewhere."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
import yaml

from infra.offline import check
from infra.offline.analyzer import PolicyPackProcess
from infra.offline.check import check_manifests, load_manifests, yaml_files
from infra.offline.render import render_stack
from tests.support.cli import run_check
from tests.support.manifests import deployment

PRODUCTION_CONFIG = check.CONFIG_DIR / "production.json"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# --- typed lists -----------------------------------------------------------------------------

# kube-prometheus ships its dashboards as a ConfigMapList and its per-namespace RBAC as
# RoleList/RoleBindingList; the API returns typed lists whose items leave out apiVersion and kind.
TYPED_LISTS = """\
apiVersion: v1
kind: ConfigMapList
items:
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: grafana-dashboard-alertmanager-overview
    namespace: monitoring
  data:
    alertmanager-overview.json: '{"title": "Alertmanager / Overview"}'
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: grafana-settings
    namespace: monitoring
  data:
    CORS_ALLOW_ALL_ORIGINS: "true"
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBindingList
items:
- metadata:
    name: prometheus-k8s
    namespace: default
  roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: prometheus-k8s}
  subjects: [{kind: ServiceAccount, name: prometheus-k8s, namespace: monitoring}]
"""


def test_typed_lists_are_expanded_and_their_items_checked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path / "manifests_grafana-dashboardDefinitions.yaml", TYPED_LISTS)

    subjects = load_manifests(tmp_path)
    code, out, _ = run_check(capsys, "--manifests", str(tmp_path), "--json")
    report = json.loads(out)

    assert [(s.resource.type, s.resource.name, s.source) for s in subjects] == [
        (
            "kubernetes:core/v1:ConfigMap",
            "monitoring/grafana-dashboard-alertmanager-overview",
            "manifests_grafana-dashboardDefinitions.yaml#1 items[0]",
        ),
        (
            "kubernetes:core/v1:ConfigMap",
            "monitoring/grafana-settings",
            "manifests_grafana-dashboardDefinitions.yaml#1 items[1]",
        ),
        (
            "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
            "default/prometheus-k8s",
            "manifests_grafana-dashboardDefinitions.yaml#2 items[0]",
        ),
    ]
    # The item without apiVersion and kind got the list's; the original fields stay as written.
    assert subjects[2].resource.properties["roleRef"]["name"] == "prometheus-k8s"
    assert code == 1
    assert [(v["name"], v["policy"], v["file"]) for v in report["violations"]] == [
        (
            "monitoring/grafana-settings",
            "no-wildcard-cors",
            "manifests_grafana-dashboardDefinitions.yaml#1 items[1]",
        )
    ]


# --- the same object in two files ------------------------------------------------------------


def test_variant_installs_are_all_checked_and_the_duplicate_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Argo CD ships manifests/namespace-install.yaml and manifests/ha/namespace-install.yaml:
    the same objects, the HA variant with more replicas (here, also with a root container)."""
    plain = deployment("argocd-server", "argocd")
    ha = deployment("argocd-server", "argocd", replicas=2)
    ha["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "argocd-server", "namespace": "argocd"},
    }
    (tmp_path / "namespace-install.yaml").write_text(yaml.safe_dump_all([account, plain]))
    (tmp_path / "ha").mkdir()
    (tmp_path / "ha" / "namespace-install.yaml").write_text(yaml.safe_dump_all([account, ha]))

    code, out, _ = run_check(capsys, "--manifests", str(tmp_path), "--json")
    report = json.loads(out)
    text_code, text, _ = run_check(capsys, "--manifests", str(tmp_path))

    assert code == text_code == 1
    assert report["resources"] == 4
    root = [v for v in report["violations"] if v["policy"] == "k8s-no-root"]
    assert [v["file"] for v in root] == ["ha/namespace-install.yaml#2"]
    assert len({v["urn"] for v in report["violations"]}) == len(
        {v["file"] for v in report["violations"]}
    )
    warnings = {tuple(w["files"]): w for w in report["warnings"]}
    variant = warnings[("ha/namespace-install.yaml#2", "namespace-install.yaml#2")]
    account_warning = warnings[("ha/namespace-install.yaml#1", "namespace-install.yaml#1")]
    assert variant["kind"] == "duplicate"
    assert variant["message"].startswith(
        "Deployment argocd/argocd-server is defined twice, differently: "
        "ha/namespace-install.yaml#2 and namespace-install.yaml#2"
    )
    assert "defined twice, identically" in account_warning["message"]
    assert report["summary"]["warnings"] == 2
    assert "Warnings:" in text and "ServiceAccount argocd/argocd-server is defined twice" in text


def test_one_object_in_two_api_versions_is_one_duplicate(tmp_path: Path) -> None:
    old = deployment("controller", "ingress-nginx")
    new = {**old, "apiVersion": "apps/v1beta2"}
    (tmp_path / "cloud.yaml").write_text(yaml.safe_dump(old))
    (tmp_path / "baremetal.yaml").write_text(yaml.safe_dump(new))
    reader = check.ManifestReader(tmp_path)

    subjects = list(reader)

    assert len({s.resource.urn for s in subjects}) == 2
    assert [w.files for w in reader.warnings] == [("baremetal.yaml#1", "cloud.yaml#1")]


# --- Helm ------------------------------------------------------------------------------------


def test_a_chart_directory_says_to_render_it_first(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    chart = tmp_path / "charts" / "shop"
    write(chart / "Chart.yaml", "apiVersion: v2\nname: shop\nversion: 1.2.0\n")
    write(chart / "values.yaml", "image: ghcr.io/example/shop:1.2.0\nreplicas: 2\n")
    write(
        chart / "templates" / "deployment.yaml",
        """\
        {{- if .Values.enabled }}
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ include "shop.fullname" . }}
        {{- end }}
        """,
    )
    write(tmp_path / "plain.yaml", yaml.safe_dump(deployment("web", "shop")))

    code, out, err = run_check(capsys, "--manifests", str(tmp_path), "--json")

    assert code == 2 and "Traceback" not in err
    assert "charts/shop: a Helm chart (Chart.yaml)" in err and "helm template" in err
    assert "values.yaml" not in err and "plain.yaml" not in err
    assert "a Helm chart" in json.loads(out)["error"]


@pytest.mark.parametrize(
    ("template", "expression", "line"),
    [
        # Quoted, the template is valid YAML and used to pass as a literal image.
        ('      image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"\n', ".Values", 8),
        ("  namespace: {{ .Release.Namespace }}\n", ".Release.Namespace", 4),
        ("  labels: {{- toYaml .Values.labels | nindent 4 }}\n", "toYaml", 4),
    ],
)
def test_a_helm_template_file_exits_two_naming_the_expression(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, template: str, expression: str, line: int
) -> None:
    lines = [
        "apiVersion: apps/v1\n",
        "kind: Deployment\n",
        "metadata:\n",
        "  name: shop\n",
        "spec:\n",
        "  template:\n",
        "    spec:\n",
        "      containers: [{name: shop}]\n",
    ]
    lines.insert(line - 1, template)
    write(tmp_path / "deployment.yaml", "".join(lines))

    code, _, err = run_check(capsys, "--manifests", str(tmp_path / "deployment.yaml"))

    assert code == 2 and "Traceback" not in err
    assert "a Helm template" in err and expression in err and f"at line {line}" in err
    assert "helm template" in err


def test_other_tools_templates_in_values_are_checked_as_values(tmp_path: Path) -> None:
    """Prometheus rules, Grafana legends and Argo CD notifications use {{ }} in their values."""
    write(
        tmp_path / "rules.yaml",
        """\
        apiVersion: monitoring.coreos.com/v1
        kind: PrometheusRule
        metadata: {name: kube-state-metrics-rules, namespace: monitoring}
        spec:
          groups:
          - name: kube-state-metrics
            rules:
            - alert: KubeStateMetricsListErrors
              annotations:
                description: >-
                  kube-state-metrics in {{ $labels.namespace }} is failing
                  {{ with $labels.cluster -}} on {{ . }} {{- end }}
                  at {{ $value | humanizePercentage }}.
              expr: sum(rate(kube_state_metrics_list_total{result="error"}[5m])) > 0.01
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: argocd-notifications-cm, namespace: argocd}
        data:
          template.app-deployed: 'message: {{.app.metadata.name}} is now running'
        """,
    )

    assert [s.resource.name for s in load_manifests(tmp_path)] == [
        "monitoring/kube-state-metrics-rules",
        "argocd/argocd-notifications-cm",
    ]


# --- a render directory ----------------------------------------------------------------------


def test_a_render_directory_checks_its_manifests_and_names_what_it_skipped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """policies/README.md's command, on what `python -m infra render` writes for two stacks."""
    render_stack("dev", tmp_path)
    render_stack("production", tmp_path)
    write(tmp_path / ".github" / "workflows" / "ci.yml", "on: push\njobs: {}\n")

    code, out, _ = run_check(
        capsys, "--manifests", str(tmp_path), "--policy-config", str(PRODUCTION_CONFIG), "--json"
    )
    report = json.loads(out)

    assert code == 0, report["violations"]
    rendered = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.yaml"))
    kubernetes = [f for f in rendered if "/kubernetes/" in f]
    assert report["resources"] == len(kubernetes) > 40
    skipped = {w["message"].split(":")[0]: w["files"] for w in report["warnings"]}
    others = [f"{f}#1" for f in rendered if "/kubernetes/" not in f]
    assert skipped[f"{len(others)} rendered resources not checked"] == others
    assert skipped["1 document not checked"] == [".github/workflows/ci.yml#1"]
    assert {f.split("/")[1] for f in others} == {"docker", "random"}


def test_a_directory_without_any_kubernetes_object_exits_two(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write(tmp_path / "docker-compose.yml", "services:\n  web: {image: nginx}\n")

    code, _, err = run_check(capsys, "--manifests", str(tmp_path))

    assert code == 2 and "holds no Kubernetes objects" in err


def test_an_empty_directory_exits_two(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()

    code, _, err = run_check(capsys, "--manifests", str(tmp_path / "empty"))

    assert code == 2 and "holds no .yaml or .yml files" in err


def test_manifest_values_reach_the_pack_as_json(pack: PolicyPackProcess, tmp_path: Path) -> None:
    write(
        tmp_path / "secret.yaml",
        """\
        apiVersion: v1
        kind: Secret
        metadata: {name: tls, namespace: shop, annotations: {rotated: 2024-05-01}}
        data:
          tls.key: !!binary |
            c2VjcmV0
        ---
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: ports, namespace: shop}
        data: {8080: http, true: "yes"}
        """,
    )

    secret, ports = (s.resource.properties for s in load_manifests(tmp_path))
    report = check_manifests(tmp_path, pack=pack)

    assert secret["data"]["tls.key"] == "c2VjcmV0"
    assert secret["metadata"]["annotations"]["rotated"] == "2024-05-01"
    assert ports["data"] == {"8080": "http", "true": "yes"}
    assert report.resources == 2


# --- several pack processes ------------------------------------------------------------------


def test_packs_in_parallel_find_what_one_pack_finds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """check/shards.py spreads the Analyze calls over packs; AnalyzeStack still sees them all."""
    for index in range(12):
        name = f"app{index}"
        manifest = deployment(name, "shop", replicas=2)
        if index % 5 == 0:
            container = manifest["spec"]["template"]["spec"]["containers"][0]
            container["securityContext"]["runAsUser"] = 0
        labels = {"app.kubernetes.io/name": name}
        policy = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"podSelector": {"matchLabels": labels}},
        }
        documents = [manifest] if index % 4 == 0 else [manifest, policy]
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump_all(documents))

    reports = {}
    for count in (1, 3):
        monkeypatch.setattr(check.early, "pack_count", lambda size, count=count: count)
        reports[count] = check_manifests(tmp_path, pack_config=PRODUCTION_CONFIG)

    one, three = reports[1], reports[3]
    assert three.resources == one.resources == 12 + 9
    assert three.violations == one.violations  # the same findings, in the same order
    policies = {f.policy for f in three.violations}
    assert {"k8s-no-root", "k8s-network-policy-coverage", "k8s-pdb-coverage"} <= policies


def test_one_pack_per_core_for_large_inputs_only() -> None:
    cores = os.cpu_count() or 1

    assert check.early.pack_count(800) == 1
    assert check.early.pack_count(30_000) == min(cores, check.early.MAX_PACKS)


def test_files_parsed_in_a_worker_process_are_parsed_as_here(tmp_path: Path) -> None:
    """Large inputs are parsed in a process of their own (yaml_files.parse_files): the same
    documents in the same order, and the same problems for files that cannot be read."""
    write(tmp_path / "a.yaml", TYPED_LISTS)
    write(tmp_path / "b.yaml", "a: [unclosed\n")
    write(tmp_path / "c.yaml", "metadata:\n  namespace: {{ .Release.Namespace }}\n")
    write(tmp_path / "d.yaml", "x: !!binary aGk=\nwhen: 2024-05-01\n---\n---\n1: true\n")
    (tmp_path / "e.yaml").write_bytes(b"name: \xff\n")
    files = check.manifest_files(tmp_path)

    here = list(yaml_files.parse_files(files))
    there = list(yaml_files.parse_files(files, in_worker=True))

    assert there == here
    assert [p.problem is None for p in here] == [True, False, False, True, False]
    assert here[3].documents == [{"x": "aGk=", "when": "2024-05-01"}, None, {"1": True}]


def test_a_recursive_alias_is_refused_naming_the_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """JSON cannot hold a value that contains itself; the check used to walk it forever."""
    write(
        tmp_path / "loop.yaml",
        """\
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: loop}
        data: &data
          self: *data
        """,
    )

    code, _, err = run_check(capsys, "--manifests", str(tmp_path))

    assert code == 2
    assert "loop.yaml: not valid YAML: a recursive alias" in err
