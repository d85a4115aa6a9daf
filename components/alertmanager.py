"""Alertmanager: alerts routed by severity to the stack's webhooks (critical and warning), its
configuration in a Secret since the webhook URLs are credentials.

Part of the Monitoring component: `alertmanager_spec` describes the service,
`alertmanager_config` its alertmanager.yml.
"""

from __future__ import annotations

import pulumi

from components.common import NOBODY, small_compute, storage, yaml_text
from spec.probes import HttpGet, Probe, Probes
from spec.service import Container, Ingress, Port, ServiceSpec
from spec.volumes import FilesVolume, Mount

PORT = 9093


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


def alertmanager_spec(
    name: str,
    *,
    image: str,
    storage_size: str | None,
    critical_webhook: pulumi.Input[str] | None,
    warning_webhook: pulumi.Input[str] | None,
) -> ServiceSpec:
    """The Alertmanager of the Monitoring component `name`; only Prometheus may connect."""
    config = pulumi.Output.secret(
        pulumi.Output.all(critical_webhook, warning_webhook).apply(
            lambda urls: yaml_text(alertmanager_config(urls[0], urls[1]))
        )
    )
    server = Container(
        name="alertmanager",
        image=image,
        uid=NOBODY,
        gid=NOBODY,
        compute=small_compute("200m", "128Mi"),
        args=(
            "--config.file=/etc/alertmanager/alertmanager.yml",
            "--storage.path=/alertmanager",
            # One replica: without peers, gossip would only log errors.
            "--cluster.listen-address=",
        ),
        ports=(Port(name="http", port=PORT),),
        probes=Probes(
            liveness=Probe(check=HttpGet(path="/-/healthy", port=PORT)),
            readiness=Probe(check=HttpGet(path="/-/ready", port=PORT)),
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
            storage("data", storage_size),
        ),
        service_ports=(Port(name="http", port=PORT),),
        ingress=(Ingress(from_services=("prometheus",), ports=(PORT,)),),
    )
