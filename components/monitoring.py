"""Monitoring: Prometheus (scraping the app, the exporters and itself, with the alert rules of
components/files/alerts), Alertmanager (critical and warning routed to the stack's webhooks, its
config in a Secret) and Grafana (admin password generated, datasource and the dashboards of
components/files/dashboards provisioned from files).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import yaml

from components.common import FILES, TMP, TMP_MOUNT, secret_password
from spec.images import is_pinned_image
from spec.platform import Deployed, Platform
from spec.probes import HttpGet, Probe, Probes
from spec.service import Compute, Container, Ingress, Port, Publish, ServiceSpec
from spec.volumes import DataVolume, FilesVolume, Mount, ScratchVolume, Volume

PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
GRAFANA_PORT = 3000
NOBODY = 65534
GRAFANA_UID = 472
# Not under /etc/prometheus: a mount inside a read-only ConfigMap mount cannot be created.
RULES_DIR = "/etc/prometheus-rules"


@dataclass(frozen=True, kw_only=True)
class ScrapeTarget:
    """One Prometheus job with a static target."""

    job: str
    address: str
    """host:port inside the platform."""
    path: str = "/metrics"


@dataclass(frozen=True, kw_only=True)
class MonitoringArgs:
    """Settings of the monitoring stack."""

    platform: Platform
    """Back end that turns the description into resources."""
    targets: tuple[ScrapeTarget, ...]
    """What Prometheus scrapes besides itself and Alertmanager."""
    environment: str
    """Added as the `environment` label to every series and alert."""
    namespace: str | None = None
    """Kubernetes: keep only this namespace's kubelet/cAdvisor series."""
    prometheus_storage_size: str | None = "10Gi"
    """TSDB volume; None: metrics live only as long as the container."""
    retention: str = "15d"
    """How long Prometheus keeps samples."""
    alertmanager_storage_size: str | None = "1Gi"
    """Silences and notification log volume."""
    grafana_storage_size: str | None = "1Gi"
    """Grafana's database volume."""
    critical_webhook: pulumi.Input[str] | None = None
    """Where severity=critical alerts go (secret); None: nowhere."""
    warning_webhook: pulumi.Input[str] | None = None
    """Where severity=warning alerts go (secret); None: nowhere."""
    prometheus_image: str = "prom/prometheus:v2.54.1"
    """Prometheus image."""
    alertmanager_image: str = "prom/alertmanager:v0.27.0"
    """Alertmanager image."""
    grafana_image: str = "grafana/grafana:11.2.2"
    """Grafana image."""

    def __post_init__(self) -> None:
        for image in (self.prometheus_image, self.alertmanager_image, self.grafana_image):
            if not is_pinned_image(image):
                raise ValueError(f"MonitoringArgs: image {image!r} must be pinned")
        jobs = [t.job for t in self.targets]
        if len(set(jobs)) != len(jobs):
            raise ValueError(f"MonitoringArgs: scrape job names repeat: {sorted(jobs)}")


class Monitoring(pulumi.ComponentResource):
    """Prometheus, Alertmanager and Grafana."""

    prometheus_url: pulumi.Output[str]
    """Prometheus inside the platform."""
    alertmanager_url: pulumi.Output[str]
    """Alertmanager inside the platform."""
    grafana_url: pulumi.Output[str]
    """Grafana inside the platform."""
    grafana_admin_password: pulumi.Output[str]
    """Password of Grafana's `admin` user (secret)."""

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("safeguard:components:Monitoring", name, None, opts)
        admin_password = secret_password(f"{name}-grafana-admin-password", self)
        alertmanager = args.platform.deploy(_alertmanager(name, args), parent=self)
        prometheus = args.platform.deploy(_prometheus(name, args, alertmanager), parent=self)
        grafana = args.platform.deploy(
            _grafana(name, args, prometheus, admin_password), parent=self
        )

        self.prometheus_url = pulumi.Output.from_input(
            f"http://{prometheus.host}:{PROMETHEUS_PORT}"
        )
        self.alertmanager_url = pulumi.Output.from_input(
            f"http://{alertmanager.host}:{ALERTMANAGER_PORT}"
        )
        self.grafana_url = pulumi.Output.from_input(f"http://{grafana.host}:{GRAFANA_PORT}")
        self.grafana_admin_password = admin_password
        self.register_outputs(
            {
                "prometheus_url": self.prometheus_url,
                "alertmanager_url": self.alertmanager_url,
                "grafana_url": self.grafana_url,
                "grafana_admin_password": self.grafana_admin_password,
            }
        )


def alert_rule_files() -> dict[str, str]:
    """The rule files shipped with the project, by file name."""
    return {p.name: p.read_text() for p in sorted((FILES / "alerts").glob("*.yaml"))}


def dashboard_files() -> dict[str, str]:
    """The Grafana dashboards shipped with the project, by file name."""
    return {p.name: p.read_text() for p in sorted((FILES / "dashboards").glob("*.json"))}


def prometheus_config(args: MonitoringArgs, alertmanager: str) -> dict:
    """prometheus.yml as data."""
    jobs: list[dict] = [
        {
            "job_name": "prometheus",
            "static_configs": [{"targets": [f"127.0.0.1:{PROMETHEUS_PORT}"]}],
        },
        {"job_name": "alertmanager", "static_configs": [{"targets": [alertmanager]}]},
    ]
    jobs += [
        {"job_name": t.job, "metrics_path": t.path, "static_configs": [{"targets": [t.address]}]}
        for t in args.targets
    ]
    if args.platform.name == "kubernetes":
        jobs += [
            _kubelet_job("kubelet", "/metrics", args.namespace),
            _kubelet_job("cadvisor", "/metrics/cadvisor", args.namespace),
        ]
    return {
        "global": {
            "scrape_interval": "15s",
            "evaluation_interval": "15s",
            "external_labels": {"environment": args.environment},
        },
        "rule_files": [f"{RULES_DIR}/*.yaml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": jobs,
    }


def _kubelet_job(job: str, path: str, namespace: str | None) -> dict:
    """Kubelet metrics through the API server's node proxy (volume stats, container usage).

    This is why Prometheus alone gets a ServiceAccount token on Kubernetes.
    """
    token = "/var/run/secrets/kubernetes.io/serviceaccount"
    config: dict = {
        "job_name": job,
        "scheme": "https",
        "kubernetes_sd_configs": [{"role": "node"}],
        "tls_config": {"ca_file": f"{token}/ca.crt"},
        "authorization": {"credentials_file": f"{token}/token"},
        "relabel_configs": [
            {"target_label": "__address__", "replacement": "kubernetes.default.svc:443"},
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


def alertmanager_config(critical: str | None, warning: str | None) -> dict:
    """alertmanager.yml as data; a severity without a webhook goes to the `null` receiver."""
    receivers: list[dict] = [{"name": "null"}]
    routes: list[dict] = [{"matchers": ['alertname="Watchdog"'], "receiver": "null"}]
    for severity, url in (("critical", critical), ("warning", warning)):
        if url:
            receivers.append(
                {"name": severity, "webhook_configs": [{"url": url, "send_resolved": True}]}
            )
            routes.append({"matchers": [f'severity="{severity}"'], "receiver": severity})
    return {
        "route": {
            "receiver": "null",
            "group_by": ["alertname", "severity"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "4h",
            "routes": routes,
        },
        "receivers": receivers,
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["alertname"],
            }
        ],
    }


def render_prometheus_yaml(args: MonitoringArgs, alertmanager: str) -> str:
    """prometheus.yml text, e.g. for `promtool check config`."""
    return _dump(prometheus_config(args, alertmanager))


def _dump(data: Mapping) -> str:
    return yaml.safe_dump(dict(data), sort_keys=True, default_flow_style=False)


def _storage(name: str, size: str | None) -> Volume:
    return DataVolume(name=name, size=size) if size else ScratchVolume(name=name, size="1Gi")


def _small(cpu_limit: str, memory_limit: str) -> Compute:
    return Compute(
        cpu_request="50m", memory_request="64Mi", cpu_limit=cpu_limit, memory_limit=memory_limit
    )


def _prometheus(name: str, args: MonitoringArgs, alertmanager: Deployed) -> ServiceSpec:
    config = render_prometheus_yaml(args, f"{alertmanager.host}:{ALERTMANAGER_PORT}")
    server = Container(
        name="prometheus",
        image=args.prometheus_image,
        uid=NOBODY,
        gid=NOBODY,
        compute=Compute(
            cpu_request="100m", memory_request="256Mi", cpu_limit="1", memory_limit="1Gi"
        ),
        args=(
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            f"--storage.tsdb.retention.time={args.retention}",
            "--web.console.libraries=/usr/share/prometheus/console_libraries",
            "--web.console.templates=/usr/share/prometheus/consoles",
        ),
        ports=(Port(name="http", port=PROMETHEUS_PORT),),
        probes=Probes(
            liveness=Probe(check=HttpGet(path="/-/healthy", port=PROMETHEUS_PORT)),
            readiness=Probe(check=HttpGet(path="/-/ready", port=PROMETHEUS_PORT), period_seconds=5),
            # Replaying the write-ahead log after a restart can take minutes.
            startup=Probe(
                check=HttpGet(path="/-/ready", port=PROMETHEUS_PORT),
                period_seconds=10,
                failure_threshold=60,
            ),
        ),
        mounts=(
            Mount(volume="config", path="/etc/prometheus", read_only=True),
            Mount(volume="rules", path=RULES_DIR, read_only=True),
            Mount(volume="data", path="/prometheus"),
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
            _storage("data", args.prometheus_storage_size),
        ),
        service_ports=(Port(name="http", port=PROMETHEUS_PORT),),
        ingress=(Ingress(from_services=("grafana",), ports=(PROMETHEUS_PORT,)),),
        node_metrics=True,
        service_account_token=args.platform.name == "kubernetes",
        publish=(Publish(port=PROMETHEUS_PORT, host_port=PROMETHEUS_PORT),),
    )


def _alertmanager(name: str, args: MonitoringArgs) -> ServiceSpec:
    config = pulumi.Output.secret(
        pulumi.Output.all(args.critical_webhook, args.warning_webhook).apply(
            lambda urls: _dump(alertmanager_config(urls[0], urls[1]))
        )
    )
    server = Container(
        name="alertmanager",
        image=args.alertmanager_image,
        uid=NOBODY,
        gid=NOBODY,
        compute=_small("200m", "128Mi"),
        args=(
            "--config.file=/etc/alertmanager/alertmanager.yml",
            "--storage.path=/alertmanager",
            # One replica: without peers, gossip would only log errors.
            "--cluster.listen-address=",
        ),
        ports=(Port(name="http", port=ALERTMANAGER_PORT),),
        probes=Probes(
            liveness=Probe(check=HttpGet(path="/-/healthy", port=ALERTMANAGER_PORT)),
            readiness=Probe(check=HttpGet(path="/-/ready", port=ALERTMANAGER_PORT)),
        ),
        mounts=(
            Mount(volume="config", path="/etc/alertmanager", read_only=True),
            Mount(volume="data", path="/alertmanager"),
        ),
    )
    return ServiceSpec(
        name="alertmanager",
        resource_name=f"{name}-alertmanager",
        containers=(server,),
        stateful=True,
        volumes=(
            FilesVolume(name="config", files={"alertmanager.yml": config}, secret=True),
            _storage("data", args.alertmanager_storage_size),
        ),
        service_ports=(Port(name="http", port=ALERTMANAGER_PORT),),
        ingress=(Ingress(from_services=("prometheus",), ports=(ALERTMANAGER_PORT,)),),
    )


def _grafana(
    name: str, args: MonitoringArgs, prometheus: Deployed, admin_password: pulumi.Output[str]
) -> ServiceSpec:
    datasources = {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "uid": "prometheus",
                "type": "prometheus",
                "access": "proxy",
                "url": f"http://{prometheus.host}:{PROMETHEUS_PORT}",
                "isDefault": True,
                "editable": False,
            }
        ],
    }
    providers = {
        "apiVersion": 1,
        "providers": [
            {
                "name": "safeguard",
                "folder": "safeguard",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "options": {"path": "/etc/grafana/dashboards"},
            }
        ],
    }
    server = Container(
        name="grafana",
        image=args.grafana_image,
        uid=GRAFANA_UID,
        gid=GRAFANA_UID,
        compute=_small("500m", "256Mi"),
        ports=(Port(name="http", port=GRAFANA_PORT),),
        env={
            "GF_SECURITY_ADMIN_USER": "admin",
            "GF_USERS_ALLOW_SIGN_UP": "false",
            "GF_AUTH_ANONYMOUS_ENABLED": "false",
            "GF_ANALYTICS_REPORTING_ENABLED": "false",
            "GF_ANALYTICS_CHECK_FOR_UPDATES": "false",
            "GF_LOG_MODE": "console",
            "GF_PATHS_DATA": "/var/lib/grafana",
            "GF_PATHS_PROVISIONING": "/etc/grafana/provisioning",
        },
        secret_env={"GF_SECURITY_ADMIN_PASSWORD": "GF_SECURITY_ADMIN_PASSWORD"},
        probes=Probes(
            liveness=Probe(check=HttpGet(path="/api/health", port=GRAFANA_PORT)),
            readiness=Probe(check=HttpGet(path="/api/health", port=GRAFANA_PORT)),
            startup=Probe(
                check=HttpGet(path="/api/health", port=GRAFANA_PORT),
                period_seconds=5,
                failure_threshold=60,
            ),
        ),
        mounts=(
            Mount(
                volume="datasources", path="/etc/grafana/provisioning/datasources", read_only=True
            ),
            Mount(volume="providers", path="/etc/grafana/provisioning/dashboards", read_only=True),
            Mount(volume="dashboards", path="/etc/grafana/dashboards", read_only=True),
            Mount(volume="data", path="/var/lib/grafana"),
            TMP_MOUNT,
        ),
    )
    return ServiceSpec(
        name="grafana",
        resource_name=f"{name}-grafana",
        containers=(server,),
        stateful=True,
        volumes=(
            FilesVolume(name="datasources", files={"prometheus.yaml": _dump(datasources)}),
            FilesVolume(name="providers", files={"safeguard.yaml": _dump(providers)}),
            FilesVolume(name="dashboards", files=dashboard_files()),
            _storage("data", args.grafana_storage_size),
            TMP,
        ),
        secrets={"GF_SECURITY_ADMIN_PASSWORD": admin_password},
        service_ports=(Port(name="http", port=GRAFANA_PORT),),
        # Operators reach Grafana through `kubectl port-forward` (or 127.0.0.1 on Docker),
        # which NetworkPolicies do not see: no pod needs to connect to it.
        ingress=(),
        publish=(Publish(port=GRAFANA_PORT, host_port=GRAFANA_PORT),),
    )
