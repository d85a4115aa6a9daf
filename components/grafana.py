"""Grafana: its admin password generated and kept in a Secret, the Prometheus datasource and the
dashboards of components/files/dashboards provisioned from files.

Part of the Monitoring component: `grafana_spec` describes the service.
"""

from __future__ import annotations

import pulumi

from components.common import FILES, TMP, TMP_MOUNT, small_compute, storage, yaml_text
from spec.probes import HttpGet, Probe, Probes
from spec.service import Container, Port, Publish, ServiceSpec
from spec.volumes import FilesVolume, Mount

PORT = 3000
UID = 472
"""The `grafana` user and group of the official image."""


def dashboard_files() -> dict[str, str]:
    """The Grafana dashboards shipped with the project, by file name."""
    return {p.name: p.read_text() for p in sorted((FILES / "dashboards").glob("*.json"))}


def _datasources(prometheus_url: str) -> dict:
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "Prometheus",
                "uid": "prometheus",
                "type": "prometheus",
                "access": "proxy",
                "url": prometheus_url,
                "isDefault": True,
                "editable": False,
            }
        ],
    }


def _providers() -> dict:
    return {
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


def grafana_spec(
    name: str,
    *,
    image: str,
    storage_size: str | None,
    prometheus_url: str,
    admin_password: pulumi.Output[str],
) -> ServiceSpec:
    """The Grafana of the Monitoring component `name`, reading Prometheus at `prometheus_url`."""
    server = Container(
        name="grafana",
        image=image,
        uid=UID,
        gid=UID,
        compute=small_compute("500m", "256Mi"),
        ports=(Port(name="http", port=PORT),),
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
        # The image's /run.sh sets every GF_* variable from the file its GF_*__FILE names
        # (grafana/grafana packaging/docker/run.sh).
        secret_files={"GF_SECURITY_ADMIN_PASSWORD__FILE": "GF_SECURITY_ADMIN_PASSWORD"},
        probes=Probes(
            liveness=Probe(check=HttpGet(path="/api/health", port=PORT)),
            readiness=Probe(check=HttpGet(path="/api/health", port=PORT)),
            startup=Probe(
                check=HttpGet(path="/api/health", port=PORT),
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
            FilesVolume(
                name="datasources",
                files={"prometheus.yaml": yaml_text(_datasources(prometheus_url))},
            ),
            FilesVolume(name="providers", files={"safeguard.yaml": yaml_text(_providers())}),
            FilesVolume(name="dashboards", files=dashboard_files()),
            storage("data", storage_size),
            TMP,
        ),
        secrets={"GF_SECURITY_ADMIN_PASSWORD": admin_password},
        service_ports=(Port(name="http", port=PORT),),
        # Operators reach Grafana through `kubectl port-forward` (or 127.0.0.1 on Docker),
        # which NetworkPolicies do not see: no pod needs to connect to it.
        ingress=(),
        publish=(Publish(port=PORT, host_port=PORT),),
    )
