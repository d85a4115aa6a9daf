"""Prometheus: scraping the app, the exporters, Alertmanager and itself (and, on Kubernetes, the
kubelet and cAdvisor through the API server), with the alert rules of components/files/alerts.

Part of the Monitoring component: `prometheus_spec` describes the service, `prometheus_config`
its prometheus.yml.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.common import FILES, NOBODY, storage
from spec.probes import HttpGet, Probe, Probes
from spec.service import Compute, Container, Ingress, Port, Publish, ServiceSpec
from spec.volumes import ApiTokenVolume, FilesVolume, Mount

PORT = 9090
# Not under /etc/prometheus: a mount inside a read-only ConfigMap mount cannot be created.
RULES_DIR = "/etc/prometheus-rules"
API_TOKEN_DIR = "/var/run/secrets/kubernetes-api"
"""Kubernetes: the ServiceAccount token and the cluster's CA, mounted into the server alone (not
the automount path: no pod mounts that)."""
API_SERVER = "https://kubernetes.default.svc:443"


@dataclass(frozen=True, kw_only=True)
class ScrapeTarget:
    """One Prometheus job with a static target."""

    job: str
    address: pulumi.Input[str]
    """host:port inside the platform: the `metrics_target` of the component scraped."""
    path: str = "/metrics"
    honor_labels: bool = False
    """Keep the `job` and `instance` labels of the scraped series (a Pushgateway's: they name
    the job that pushed), instead of the target's."""


def known_targets(targets: Sequence[ScrapeTarget]) -> pulumi.Output[list[ScrapeTarget]]:
    """The targets once their addresses, outputs of the components scraped, are known."""
    return pulumi.Output.all(*(t.address for t in targets)).apply(
        lambda addresses: [
            dataclasses.replace(target, address=address)
            for target, address in zip(targets, addresses, strict=True)
        ]
    )


def alert_rule_files() -> dict[str, str]:
    """The rule files shipped with the project, by file name."""
    return {p.name: p.read_text() for p in sorted((FILES / "alerts").glob("*.yaml"))}


def prometheus_config(
    *,
    targets: Sequence[ScrapeTarget],
    alertmanager: str,
    environment: str,
    kubernetes: bool,
    namespace: str | None,
) -> dict:
    """prometheus.yml as data: the targets (their addresses known), Alertmanager at
    `alertmanager` (host:port) and Prometheus itself, `environment` on every series; on
    `kubernetes`, the kubelet and cAdvisor too, kept to `namespace` when it is set."""
    jobs: list[dict] = [
        {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{PORT}"]}]},
        {"job_name": "alertmanager", "static_configs": [{"targets": [alertmanager]}]},
    ]
    jobs += [
        {"job_name": t.job, "metrics_path": t.path, "static_configs": [{"targets": [t.address]}]}
        | ({"honor_labels": True} if t.honor_labels else {})
        for t in targets
    ]
    if kubernetes:
        jobs += [
            _kubelet_job("kubelet", "/metrics", namespace),
            _kubelet_job("cadvisor", "/metrics/cadvisor", namespace),
        ]
    return {
        "global": {
            "scrape_interval": "15s",
            "evaluation_interval": "15s",
            "external_labels": {"environment": environment},
        },
        "rule_files": [f"{RULES_DIR}/*.yaml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": jobs,
    }


def _kubelet_job(job: str, path: str, namespace: str | None) -> dict:
    """Kubelet metrics through the API server's node proxy (volume stats, container usage).

    This is why Prometheus alone needs a ServiceAccount token on Kubernetes. The nodes are
    discovered and scraped with the token at API_TOKEN_DIR; discovery then needs the API server
    named, since without `api_server` Prometheus takes the automount path's files and refuses
    its own client settings (prometheus/prometheus discovery/kubernetes/kubernetes.go v2.54.1,
    SDConfig.UnmarshalYAML).
    """
    api = {
        "tls_config": {"ca_file": f"{API_TOKEN_DIR}/ca.crt"},
        "authorization": {"credentials_file": f"{API_TOKEN_DIR}/token"},
    }
    config: dict = {
        "job_name": job,
        "scheme": "https",
        "kubernetes_sd_configs": [{"role": "node", "api_server": API_SERVER, **api}],
        **api,
        "relabel_configs": [
            {"target_label": "__address__", "replacement": API_SERVER.removeprefix("https://")},
            {
                "source_labels": ["__meta_kubernetes_node_name"],
                "target_label": "__metrics_path__",
                "replacement": f"/api/v1/nodes/$1/proxy{path}",
            },
        ],
    }
    if namespace:
        # The node reports every pod on it; only this stack's series are worth storing.
        config["metric_relabel_configs"] = [
            {"source_labels": ["namespace"], "regex": namespace, "action": "keep"}
        ]
    return config


def prometheus_spec(
    name: str,
    *,
    image: str,
    config: pulumi.Input[str],
    retention: str,
    storage_size: str | None,
    kubernetes: bool,
) -> ServiceSpec:
    """The Prometheus server of the Monitoring component `name`, on `config` (prometheus.yml)."""
    server = Container(
        name="prometheus",
        image=image,
        uid=NOBODY,
        gid=NOBODY,
        compute=Compute(
            cpu_request="100m", memory_request="256Mi", cpu_limit="1", memory_limit="1Gi"
        ),
        args=(
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            f"--storage.tsdb.retention.time={retention}",
            "--web.console.libraries=/usr/share/prometheus/console_libraries",
            "--web.console.templates=/usr/share/prometheus/consoles",
        ),
        ports=(Port(name="http", port=PORT),),
        probes=Probes(
            liveness=Probe(check=HttpGet(path="/-/healthy", port=PORT)),
            readiness=Probe(check=HttpGet(path="/-/ready", port=PORT), period_seconds=5),
            # Replaying the write-ahead log after a restart can take minutes.
            startup=Probe(
                check=HttpGet(path="/-/ready", port=PORT), period_seconds=10, failure_threshold=60
            ),
        ),
        mounts=(
            Mount(volume="config", path="/etc/prometheus", read_only=True),
            Mount(volume="rules", path=RULES_DIR, read_only=True),
            Mount(volume="data", path="/prometheus"),
            *(
                (Mount(volume="api-token", path=API_TOKEN_DIR, read_only=True),)
                if kubernetes
                else ()
            ),
        ),
    )
    return ServiceSpec(
        name="prometheus",
        resource_name=f"{name}-prometheus",
        containers=(server,),
        stateful=True,
        volumes=(
            FilesVolume(name="config", files={"prometheus.yml": config}),
            FilesVolume(name="rules", files=alert_rule_files()),
            storage("data", storage_size),
            *((ApiTokenVolume(name="api-token"),) if kubernetes else ()),
        ),
        service_ports=(Port(name="http", port=PORT),),
        ingress=(Ingress(from_services=("grafana",), ports=(PORT,)),),
        node_metrics=True,
        publish=(Publish(port=PORT, host_port=PORT),),
    )
