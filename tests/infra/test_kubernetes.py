"""Properties of the Kubernetes stacks (staging, production), read from the recorded resources."""

from __future__ import annotations

import importlib.util
import json

import pytest
import yaml

from spec.images import is_pinned_image
from tests.support.deployed import deployed_files
from tests.support.mocks import (
    KUBERNETES_STACKS,
    build_stack,
    containers,
    is_secret,
    pod_specs,
    unwrap,
)

pytestmark = pytest.mark.parametrize("stack", KUBERNETES_STACKS)


def _by_kind(run, kind: str) -> dict[str, dict]:
    """The objects of `kind` the program creates or reads (a read: as the cluster holds it)."""
    return {
        unwrap(r.outputs if r.external else r.inputs)["metadata"]["name"]: unwrap(
            r.outputs if r.external else r.inputs
        )
        for r in run.resources
        if r.custom and r.kind == kind and r.type.startswith("kubernetes:")
    }


def test_every_container_is_hardened_with_probes_and_limits(stack: str) -> None:
    run = build_stack(stack)
    seen = 0
    for workload, pod in pod_specs(run):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container, is_init in containers(pod):
            seen += 1
            where = f"{workload.name}/{container['name']}"
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, where
            assert security["runAsUser"] > 0, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, where
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) == {"cpu", "memory"}, where
            assert is_pinned_image(container["image"]), where
            if not is_init and workload.kind != "CronJob":
                assert "livenessProbe" in container and "readinessProbe" in container, where
    # app + migrate, 3 x (server + exporter), backup, restore check, pushgateway, prometheus,
    # alertmanager, grafana
    assert seen == 14


def test_no_pod_automounts_a_token_and_only_prometheus_s_server_mounts_one(stack: str) -> None:
    # CKV_K8S_38 (checkov): a pod with automountServiceAccountToken gives every container the
    # token; Prometheus' discovery and kubelet scrapes need one, in its server only.
    run = build_stack(stack)
    accounts = _by_kind(run, "ServiceAccount")
    prometheus = yaml.safe_load(deployed_files(stack)["/etc/prometheus/prometheus.yml"])
    readers = {
        path
        for job in prometheus["scrape_configs"]
        for client in (job, *job.get("kubernetes_sd_configs", ()))
        for path in (
            client.get("authorization", {}).get("credentials_file"),
            client.get("tls_config", {}).get("ca_file"),
        )
        if path
    }
    mounted = {}
    for workload, pod in pod_specs(run):
        assert pod["automountServiceAccountToken"] is False, workload.name
        tokens = {
            v["name"]: v["projected"]["sources"]
            for v in pod.get("volumes", [])
            if any(
                "serviceAccountToken" in source
                for source in v.get("projected", {}).get("sources", [])
            )
        }
        for container, _ in containers(pod):
            for mount in container.get("volumeMounts", []):
                if mount["name"] in tokens:
                    where = (workload.inputs["metadata"]["name"], container["name"])
                    mounted[where] = (mount, tokens[mount["name"]], pod["serviceAccountName"])

    assert all(a["automountServiceAccountToken"] is False for a in accounts.values())
    ((where, (mount, sources, account)),) = mounted.items()
    assert where == ("prometheus", "prometheus") and account == "prometheus"
    assert mount["readOnly"] is True
    assert readers == {f"{mount['mountPath']}/token", f"{mount['mountPath']}/ca.crt"}
    (token,) = [s["serviceAccountToken"] for s in sources if "serviceAccountToken" in s]
    # No audience named: the token is bound to the API server's own, the only reader here.
    assert token == {"path": "token", "expirationSeconds": 3600}
    assert {
        "configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}
    } in sources


def test_everything_lives_in_the_stack_namespace(stack: str) -> None:
    run = build_stack(stack)
    expected = f"safeguard-{stack}"
    assert list(_by_kind(run, "Namespace")) == [expected]
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for r in run.resources:
        if r.custom and r.type.startswith("kubernetes:") and r.kind not in cluster_scoped:
            fields = r.outputs if r.external else r.inputs
            assert fields["metadata"]["namespace"] == expected, r.name


def test_service_selectors_match_pods_and_target_ports_exist(stack: str) -> None:
    run = build_stack(stack)
    pods = [
        (pod, w.inputs["spec"]["template"]["metadata"]["labels"])
        for w, pod in pod_specs(run)
        if w.kind != "CronJob"
    ]
    for name, service in _by_kind(run, "Service").items():
        selector = service["spec"]["selector"]
        matching = [pod for pod, labels in pods if selector.items() <= labels.items()]
        assert len(matching) == 1, name
        ports = {p["containerPort"] for c in matching[0]["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{name}:{port['port']}"


def test_pods_reference_only_configmaps_and_secrets_that_exist(stack: str) -> None:
    run = build_stack(stack)
    config_maps = set(_by_kind(run, "ConfigMap"))
    # Created, read from the cluster (which fails the preview when it is missing), or issued
    # by cert-manager.
    issued = {c["spec"]["secretName"] for c in _by_kind(run, "Certificate").values()}
    secrets = set(_by_kind(run, "Secret")) | issued
    for workload, pod in pod_specs(run):
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, workload.name
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, workload.name
        for container, _ in containers(pod):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
            for env in container.get("env", []):
                assert env["valueFrom"]["secretKeyRef"]["name"] in secrets


def _ingress(policy: dict) -> dict[int, set[str] | None]:
    """port -> names allowed in (None: anyone)."""
    allowed: dict[int, set[str] | None] = {}
    for rule in policy["spec"].get("ingress", []):
        sources = (
            {p["podSelector"]["matchLabels"]["app.kubernetes.io/name"] for p in rule["from"]}
            if "from" in rule
            else None
        )
        for port in rule["ports"]:
            allowed[port["port"]] = sources
    return allowed


def test_network_policies_isolate_the_data_stores(stack: str) -> None:
    run = build_stack(stack)
    policies = _by_kind(run, "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
    }
    assert _ingress(policies["postgres"]) == {
        5432: {"app", "postgres-backup"},
        9187: {"prometheus"},
    }
    assert _ingress(policies["redis"]) == {6379: {"app"}, 9121: {"prometheus"}}
    assert _ingress(policies["app"]) == {8000: {"nginx", "prometheus"}}
    # Only the jobs push (a pushed success is what the backup alerts believe); Prometheus reads.
    assert _ingress(policies["pushgateway"]) == {
        9091: {"postgres-backup", "postgres-restore-check", "prometheus"}
    }
    open_to_all = {name for name, p in policies.items() if None in _ingress(p).values()}
    assert open_to_all == {"nginx"}


def test_no_generated_secret_leaks_into_plain_values(stack: str) -> None:
    run = build_stack(stack)
    assert len(run.passwords) == 4
    for r in run.resources:
        if not r.custom or r.external:  # a read holds nothing of the program's
            continue
        if r.kind == "Secret":
            assert is_secret(r.inputs["stringData"])
            continue
        text = json.dumps(r.inputs)
        for password in run.passwords.values():
            assert password not in text, f"{r.type} {r.name}"
    for key, value in run.outputs.items():
        text = json.dumps(value)
        if any(p in text for p in run.passwords.values()):
            assert key in run.secret_outputs, key


def test_app_rolls_out_safely_and_migrates_first(stack: str) -> None:
    run = build_stack(stack)
    app = _by_kind(run, "Deployment")["app"]
    assert app["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert app["spec"]["progressDeadlineSeconds"] > 0
    pod = app["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["command"] == ["python", "-m", "app", "migrate"]
    env = _by_kind(run, "ConfigMap")["app-app-env"]["data"]
    assert env["MIGRATE_ON_STARTUP"] == "false"
    assert env["APP_ENV"] == stack
    secret_keys = set(_by_kind(run, "Secret")["app"]["stringData"])
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} <= secret_keys
    assert not secret_keys & set(env)
    spread = pod["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "kubernetes.io/hostname"


def test_app_scales_and_survives_disruptions(stack: str) -> None:
    run = build_stack(stack)
    app = _by_kind(run, "Deployment")["app"]
    pod_labels = app["spec"]["template"]["metadata"]["labels"]
    hpa = _by_kind(run, "HorizontalPodAutoscaler")["app"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"}
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    pdb = _by_kind(run, "PodDisruptionBudget")["app"]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pod_labels.items()
    assert 1 <= pdb["minAvailable"] < app["spec"]["replicas"]


def test_probe_paths_are_routes_the_app_serves(stack: str) -> None:
    if importlib.util.find_spec("app") is None:
        pytest.skip("app/ has not landed yet")
    from app.main import create_app
    from app.settings import Settings

    app = create_app(
        Settings(database_url="postgresql://u:p@localhost/db", redis_url="redis://localhost")
    )
    routes = {route.path for route in app.routes}
    run = build_stack(stack)
    server = _by_kind(run, "Deployment")["app"]["spec"]["template"]["spec"]["containers"][0]
    paths = {
        server[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert paths == {"/health/startup", "/health/ready", "/health/live"}
    assert paths <= routes
    scrape = _by_kind(run, "ConfigMap")["monitoring-prometheus-config"]["data"]["prometheus.yml"]
    assert "app:8000" in scrape and "/metrics" in routes


def test_the_backup_and_restore_check_jobs_share_the_dumps_and_report(stack: str) -> None:
    run = build_stack(stack)
    crons = _by_kind(run, "CronJob")
    assert set(crons) == {"postgres-backup", "postgres-restore-check"}
    claims = _by_kind(run, "PersistentVolumeClaim")
    env = {name: cm["data"] for name, cm in _by_kind(run, "ConfigMap").items()}
    for name, cron in crons.items():
        spec = cron["spec"]
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 3600
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        # Both mount the one claim: the check reads what the backup wrote, read-only.
        claim = volumes["backups"]["persistentVolumeClaim"]["claimName"]
        assert claim == "postgres-backup-backups" and claim in claims
        mounts = {m["mountPath"]: m["readOnly"] for m in container["volumeMounts"]}
        assert mounts["/backups"] is (name == "postgres-restore-check")
        (source,) = container["envFrom"]
        assert env[source["configMapRef"]["name"]]["PUSHGATEWAY_URL"] == "http://pushgateway:9091"
    restore = crons["postgres-restore-check"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    scratch = {v["name"]: v for v in restore["volumes"]}["scratch"]["emptyDir"]
    # The throwaway database gets the room of the real one.
    assert scratch["sizeLimit"] == {"staging": "5Gi", "production": "50Gi"}[stack]
    assert "env" not in restore["containers"][0], "the restore check needs no credential"
    # The backup's credentials come from a Secret of its own, never from plain env.
    backup = crons["postgres-backup"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in backup["containers"][0]["env"]}
    assert refs["PGPASSWORD"] == {"name": "postgres-backup", "key": "PGPASSWORD"}
    (secret,) = [
        r for r in run.resources if r.kind == "Secret" and r.name == "postgres-backup-secret"
    ]
    assert is_secret(secret.inputs["stringData"])


MIRRORS = {
    "docker.io": "harbor.example.com/dockerhub",
    "quay.io": "harbor.example.com/quay",
    "ghcr.io": "harbor.example.com/ghcr",
}


def test_third_party_images_come_through_the_mirrors_with_the_pull_secrets(stack: str) -> None:
    images = {
        "registryMirrors": MIRRORS,
        "pullSecrets": ["registry-a", "registry-b"],
        "postgres": "postgres:16.6-alpine",
    }
    run = build_stack(stack, images=json.dumps(images))
    plain = {w.name: pod for w, pod in pod_specs(build_stack(stack))}

    seen = {}
    for workload, pod in pod_specs(run):
        default = plain[workload.name]
        assert pod["imagePullSecrets"] == [{"name": "registry-a"}, {"name": "registry-b"}]
        assert "imagePullSecrets" not in default
        for (container, _), (before, _) in zip(containers(pod), containers(default), strict=True):
            seen[(workload.inputs["metadata"]["name"], container["name"])] = container["image"]
            if workload.inputs["metadata"]["name"] == "app":
                assert container["image"] == before["image"], "the app's image is the release's"
            else:
                assert container["image"].startswith("harbor.example.com/"), container["image"]
    assert (
        seen[("postgres", "postgres")]
        == "harbor.example.com/dockerhub/library/postgres:16.6-alpine"
    )
    # The backup jobs' image is the project's own, but pulled like the third-party ones.
    backup_image = "harbor.example.com/ghcr/example/safeguard-backup:0.1.0"
    assert seen[("postgres-backup", "backup")] == backup_image
    assert seen[("postgres-restore-check", "restore-check")] == backup_image
    assert seen[("pushgateway", "pushgateway")] == (
        "harbor.example.com/dockerhub/prom/pushgateway:v1.5.1"
    )
    assert seen[("postgres", "exporter")] == (
        "harbor.example.com/quay/prometheuscommunity/postgres-exporter:v0.15.0"
    )
    assert seen[("redis", "exporter")] == (
        "harbor.example.com/dockerhub/oliver006/redis_exporter:v1.62.0"
    )
