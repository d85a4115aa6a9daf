"""Monitoring: Prometheus, Alertmanager and Grafana as one component, each service described by
a module of its own (components/prometheus.py, alertmanager.py, grafana.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import alertmanager, grafana, prometheus
from components.alertmanager import alertmanager_spec
from components.common import secret_password, yaml_text
from components.grafana import grafana_spec
from components.prometheus import (
    ScrapeTarget,
    known_targets,
    prometheus_config,
    prometheus_spec,
)
from spec.images import is_pinned_image
from spec.platform import Platform


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
    prometheus_image: str
    """Prometheus image (the stack's `images.prometheus`)."""
    alertmanager_image: str
    """Alertmanager image."""
    grafana_image: str
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
        kubernetes = args.platform.name == "kubernetes"
        admin_password = secret_password(f"{name}-grafana-admin-password", self)
        alerting = args.platform.deploy(
            alertmanager_spec(
                name,
                image=args.alertmanager_image,
                storage_size=args.alertmanager_storage_size,
                critical_webhook=args.critical_webhook,
                warning_webhook=args.warning_webhook,
            ),
            parent=self,
        )
        config = known_targets(args.targets).apply(
            lambda targets: yaml_text(
                prometheus_config(
                    targets=targets,
                    alertmanager=f"{alerting.host}:{alertmanager.PORT}",
                    environment=args.environment,
                    kubernetes=kubernetes,
                    namespace=args.namespace,
                )
            )
        )
        metrics = args.platform.deploy(
            prometheus_spec(
                name,
                image=args.prometheus_image,
                config=config,
                retention=args.retention,
                storage_size=args.prometheus_storage_size,
                kubernetes=kubernetes,
            ),
            parent=self,
        )
        prometheus_url = f"http://{metrics.host}:{prometheus.PORT}"
        dashboards = args.platform.deploy(
            grafana_spec(
                name,
                image=args.grafana_image,
                storage_size=args.grafana_storage_size,
                prometheus_url=prometheus_url,
                admin_password=admin_password,
            ),
            parent=self,
        )

        self.prometheus_url = pulumi.Output.from_input(prometheus_url)
        self.alertmanager_url = pulumi.Output.from_input(
            f"http://{alerting.host}:{alertmanager.PORT}"
        )
        self.grafana_url = pulumi.Output.from_input(f"http://{dashboards.host}:{grafana.PORT}")
        self.grafana_admin_password = admin_password
        self.register_outputs(
            {
                "prometheus_url": self.prometheus_url,
                "alertmanager_url": self.alertmanager_url,
                "grafana_url": self.grafana_url,
                "grafana_admin_password": self.grafana_admin_password,
            }
        )
