"""The edge's certificate on Kubernetes, under mocks: a cert-manager Certificate issues the Secret
nginx mounts and nginx waits for it to be Ready; a Secret the stack names instead is looked up
(a `get`), so that a preview fails at once when it is missing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from infra.offline.providers import ReadError, secret
from infra.offline.runtime import _quiet_about_failed_reads, run_stack
from tests.support.mocks import Recorded, StackRun, build_stack, pod_specs, unwrap

STAGING_SECRET = ("kubernetes:core/v1:Secret", "safeguard-staging/safeguard-staging-tls")
LIVE_TLS_SECRET = {
    "apiVersion": "v1",
    "kind": "Secret",
    "type": "kubernetes.io/tls",
    "metadata": {"name": "safeguard-staging-tls", "namespace": "safeguard-staging"},
    "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"},
}


def _one(run: StackRun, suffix: str) -> Recorded:
    (found,) = run.of_type(suffix)
    return found


def _mounted_tls_secret(run: StackRun) -> str:
    (pod,) = [pod for workload, pod in pod_specs(run) if workload.name == "nginx-deployment"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    return volume["secret"]["secretName"]


def _edge(host: str, tls: dict[str, Any], **more: Any) -> str:
    return json.dumps({"host": host, "tls": tls, "serviceType": "LoadBalancer", **more})


def test_cert_manager_issues_the_secret_nginx_mounts_and_nginx_waits_for_it() -> None:
    run = build_stack("production")
    certificate = _one(run, "cert-manager.io/v1:Certificate")
    nginx = next(r for r in run.of_type("apps/v1:Deployment") if r.name == "nginx-deployment")
    spec = unwrap(certificate.inputs)["spec"]
    metadata = unwrap(certificate.inputs)["metadata"]

    assert unwrap(certificate.inputs)["apiVersion"] == "cert-manager.io/v1"
    assert spec == {
        "secretName": _mounted_tls_secret(run),
        "dnsNames": ["safeguard.example.com"],
        "issuerRef": {
            "name": "letsencrypt-production",
            "kind": "ClusterIssuer",
            "group": "cert-manager.io",
        },
    }
    assert metadata["namespace"] == "safeguard-production"
    # The provider waits for custom resources only when told how.
    assert metadata["annotations"]["pulumi.com/waitFor"] == "condition=Ready"
    assert certificate.urn in nginx.dependencies
    assert [r for r in run.resources if r.external] == []


def test_an_issuer_in_the_namespace_is_named_as_an_issuer() -> None:
    run = build_stack(
        "staging",
        edge=_edge(
            "staging.safeguard.example.com",
            {"certManager": {"issuer": "team-ca", "kind": "Issuer"}},
        ),
    )
    spec = unwrap(_one(run, "cert-manager.io/v1:Certificate").inputs)["spec"]

    assert spec["issuerRef"] == {"name": "team-ca", "kind": "Issuer", "group": "cert-manager.io"}
    assert spec["secretName"] == _mounted_tls_secret(run) == "safeguard-staging-tls"


def test_a_named_secret_is_read_not_created_and_nginx_comes_after_the_read() -> None:
    run = run_stack("staging", cluster={STAGING_SECRET: LIVE_TLS_SECRET})
    (read,) = [r for r in run.resources if r.external]
    nginx = next(r for r in run.of_type("apps/v1:Deployment") if r.name == "nginx-deployment")

    assert (read.type, read.id) == STAGING_SECRET
    assert read.inputs == {}  # a `get` sends no properties
    assert read.outputs["metadata"] == LIVE_TLS_SECRET["metadata"]
    # The Secret class marks them additional secret outputs: the live keys arrive secret.
    assert read.outputs["data"] == secret(LIVE_TLS_SECRET["data"])
    assert read.urn in nginx.dependencies
    assert _mounted_tls_secret(run) == "safeguard-staging-tls"
    assert run.of_type("cert-manager.io/v1:Certificate") == []
    created = [unwrap(r.inputs)["metadata"]["name"] for r in run.of_type("core/v1:Secret")]
    assert "safeguard-staging-tls" not in created


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "update"])
def test_a_missing_secret_fails_the_run_as_the_engine_fails_the_preview(preview: bool) -> None:
    with pytest.raises(ReadError) as caught:
        run_stack("staging", cluster={}, preview=preview)

    assert str(caught.value) == (
        "resource 'safeguard-staging/safeguard-staging-tls' does not exist"
    )


def test_a_failed_read_is_reported_once_not_for_every_output_that_waited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    try:
        for error in (ReadError("resource 'a/b' does not exist"), RuntimeError("a bug")):
            _quiet_about_failed_reads(
                loop, {"message": "Future exception was never retrieved", "exception": error}
            )
    finally:
        loop.close()

    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == [
        "Future exception was never retrieved"
    ]
    assert isinstance(caplog.records[-1].exc_info[1], RuntimeError)


def test_a_secret_in_another_namespace_does_not_count() -> None:
    elsewhere = {("kubernetes:core/v1:Secret", "default/safeguard-staging-tls"): LIVE_TLS_SECRET}

    with pytest.raises(ReadError, match="'safeguard-staging/safeguard-staging-tls'"):
        run_stack("staging", cluster=elsewhere)


def test_tls_at_the_ingress_comes_after_its_certificate() -> None:
    run = build_stack(
        "production",
        edge=_edge(
            "safeguard.example.com",
            {"certManager": {"issuer": "letsencrypt-production"}},
            ingressClass="nginx",
        ),
    )
    certificate = _one(run, "cert-manager.io/v1:Certificate")
    ingress = _one(run, "networking.k8s.io/v1:Ingress")

    assert unwrap(ingress.inputs)["spec"]["tls"] == [
        {"hosts": ["safeguard.example.com"], "secretName": "safeguard-production-tls"}
    ]
    assert certificate.urn in ingress.dependencies
    # nginx serves plain HTTP behind the Ingress: it mounts no certificate, so it waits for none.
    nginx = next(r for r in run.of_type("apps/v1:Deployment") if r.name == "nginx-deployment")
    assert certificate.urn not in nginx.dependencies
