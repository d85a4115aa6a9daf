"""Properties of the Docker stack (dev): the same safeguards as on Kubernetes, as containers."""

from __future__ import annotations

import json

from tests.support.mocks import build_stack, is_secret, unwrap

# Scratch images without a shell or wget: Docker, which runs health checks inside the container,
# cannot check them (on Kubernetes the kubelet probes them over HTTP).
NO_HTTP_CLIENT = {"safeguard-dev-nginx-exporter", "safeguard-dev-redis-exporter"}


def _containers() -> list[dict]:
    run = build_stack("dev")
    return [r.inputs for r in run.of_type("index/container:Container")]


def test_every_container_is_hardened_and_limited() -> None:
    found = _containers()
    assert len(found) == 11
    for container in found:
        name = container["name"]
        uid, gid = (int(x) for x in container["user"].split(":"))
        assert uid > 0 and gid > 0, name
        assert container["readOnly"] is True, name
        assert container["capabilities"] == {"drops": ["ALL"]}, name
        assert "no-new-privileges:true" in container["securityOpts"], name
        assert container["memory"] > 0 and float(container["cpus"]) > 0, name
        assert container["restart"] in ("unless-stopped", "no"), name


def test_long_running_containers_have_health_checks_from_the_probes() -> None:
    by_name = {c["name"]: c for c in _containers()}
    for name, container in by_name.items():
        if container["restart"] == "no" or name in NO_HTTP_CLIENT:
            continue
        assert container["healthcheck"]["tests"][0] == "CMD", name
    app_check = " ".join(by_name["safeguard-dev-app"]["healthcheck"]["tests"])
    assert "http://127.0.0.1:8000/health/ready" in app_check
    assert by_name["safeguard-dev-postgres"]["healthcheck"]["tests"][1] == "pg_isready"
    assert "redis-cli" in " ".join(by_name["safeguard-dev-redis"]["healthcheck"]["tests"])
    migrate = by_name["safeguard-dev-app-migrate"]
    assert migrate["attach"] is True
    assert migrate["entrypoints"] == ["python", "-m", "app", "migrate"]
    assert "command" not in migrate  # CMD would be appended to the entrypoint


def test_only_nginx_grafana_and_prometheus_publish_ports_on_loopback() -> None:
    published = {
        c["name"]: [(p["ip"], p["external"]) for p in c.get("ports", [])]
        for c in _containers()
        if c.get("ports")
    }
    assert published == {
        "safeguard-dev-nginx": [("127.0.0.1", 8080)],
        "safeguard-dev-grafana": [("127.0.0.1", 3000)],
        "safeguard-dev-prometheus": [("127.0.0.1", 9090)],
    }


def test_data_stores_sit_only_on_the_internal_network() -> None:
    run = build_stack("dev")
    networks = {n.inputs["name"]: n.inputs for n in run.of_type("index/network:Network")}
    assert networks["safeguard-dev-backend"]["internal"] is True
    for container in (r.inputs for r in run.of_type("index/container:Container")):
        if container["name"] in ("safeguard-dev-postgres", "safeguard-dev-redis"):
            assert [n["name"] for n in container["networksAdvanced"]] == ["safeguard-dev-backend"]


def test_secrets_reach_containers_only_as_secret_values() -> None:
    run = build_stack("dev")
    for resource in run.resources:
        if not resource.custom:
            continue
        for key, value in resource.inputs.items():
            text = json.dumps(unwrap(value))
            if any(p in text for p in run.passwords.values()):
                assert is_secret(value), f"{resource.name}.{key}"
    app = next(r for r in run.of_type("index/container:Container") if r.name == "app-container")
    envs = unwrap(app.inputs["envs"])
    assert "MIGRATE_ON_STARTUP=false" in envs
    assert any(e.startswith("DATABASE_URL=postgresql://safeguard:") for e in envs)
