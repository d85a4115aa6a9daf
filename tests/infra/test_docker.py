"""Properties of the Docker stack (dev): the same safeguards as on Kubernetes, as containers."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest

from app.settings import Settings
from components.app_service import STOP_GRACE_SECONDS
from infra.offline.providers import contains_secret
from infra.platforms.docker import DockerPlatform, prepare_networks
from spec.probes import Exec, Probe, Probes
from spec.service import Compute, Container, ServiceSpec
from spec.volumes import ApiTokenVolume, Mount
from tests.support.mocks import Recorded, StackRun, build_stack, is_secret, run_program, unwrap

# Scratch images without a shell or wget: Docker, which runs health checks inside the container,
# cannot check them (on Kubernetes the kubelet probes them over HTTP).
NO_HTTP_CLIENT = {"safeguard-dev-nginx-exporter", "safeguard-dev-redis-exporter"}


def _containers() -> list[dict]:
    run = build_stack("dev")
    return [r.inputs for r in run.of_type("index/container:Container") if "start" not in r.inputs]


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


def _plain_strings(value: Any) -> Iterator[str]:
    """The strings of `value` that no secret marker covers."""
    if is_secret(value):
        return
    if isinstance(value, dict):
        for item in value.values():
            yield from _plain_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _plain_strings(item)
    elif isinstance(value, str):
        yield value


def test_secrets_reach_containers_only_as_secret_values() -> None:
    run = build_stack("dev")
    passwords = run.passwords.values()
    for resource in run.resources:
        if not resource.custom:
            continue
        for key, value in resource.inputs.items():
            leaked = [s for s in _plain_strings(value) if any(p in s for p in passwords)]
            assert leaked == [], f"{resource.name}.{key}"
            if any(p in json.dumps(unwrap(value)) for p in passwords):
                # The engine keeps the whole property secret for the provider's Check.
                assert resource.checked is not None and is_secret(resource.checked[key])
    containers = _by_name(run)
    envs = dict(e.split("=", 1) for e in unwrap(containers["safeguard-dev-app"].inputs["envs"]))
    assert envs["MIGRATE_ON_STARTUP"] == "false"
    uploads = {
        u["file"]: u["content"]
        for u in containers["safeguard-dev-app-files"].inputs["uploads"]
        if u["file"] == envs["DATABASE_URL_FILE"]
    }
    (url,) = uploads.values()
    assert is_secret(url) and unwrap(url).startswith("postgresql://safeguard:")


def _secret_files(run: StackRun, service: str) -> dict[str, dict[str, str]]:
    """Each container of `service` -> its `*_FILE` variables -> the content of the upload that
    the service's carrier lands at the path the variable names, unwrapped."""
    containers = _by_name(run)
    carrier = containers.get(f"safeguard-dev-{service}-files")
    uploads = {u["file"]: unwrap(u["content"]) for u in unwrap(carrier.inputs)["uploads"]}
    found = {}
    for name, container in containers.items():
        if name.startswith(f"safeguard-dev-{service}") and "start" not in container.inputs:
            env = dict(e.split("=", 1) for e in unwrap(container.inputs["envs"]))
            found[name] = {k: uploads[v] for k, v in env.items() if k.endswith("_FILE")}
    return found


def test_docker_envs_are_plain_and_every_secret_arrives_as_a_file() -> None:
    """No secret sits in a Docker container's `envs`, so the engine does not wrap the list as
    one secret and the pack and the diff see each entry; each secret reaches the container
    that reads it as a file its plain env names."""
    run = build_stack("dev")
    postgres, redis, grafana = (
        run.passwords[k]
        for k in ("postgres-password", "redis-password", "monitoring-grafana-admin-password")
    )
    for name, container in _by_name(run).items():
        if "start" in container.inputs:  # carriers: no env
            continue
        assert not contains_secret(container.inputs["envs"]), name
        assert container.checked is not None and not is_secret(container.checked["envs"]), name

    assert _secret_files(run, "postgres") == {
        "safeguard-dev-postgres": {"POSTGRES_PASSWORD_FILE": postgres},
        "safeguard-dev-postgres-exporter": {"DATA_SOURCE_PASS_FILE": postgres},
    }
    assert _secret_files(run, "redis") == {
        "safeguard-dev-redis": {"REDIS_PASSWORD_FILE": redis},
        "safeguard-dev-redis-exporter": {
            "REDIS_PASSWORD_FILE": json.dumps({"redis://127.0.0.1:6379": redis})
        },
    }
    assert _secret_files(run, "grafana") == {
        "safeguard-dev-grafana": {"GF_SECURITY_ADMIN_PASSWORD__FILE": grafana}
    }
    app = _secret_files(run, "app")
    # The migrations get the database's URL and nothing else.
    assert set(app["safeguard-dev-app-migrate"]) == {"DATABASE_URL_FILE"}
    assert set(app["safeguard-dev-app"]) == {
        "DATABASE_URL_FILE", "REDIS_URL_FILE", "SECRET_KEY_FILE"
    }  # fmt: skip
    database_url = app["safeguard-dev-app"]["DATABASE_URL_FILE"]
    assert database_url == f"postgresql://safeguard:{postgres}@postgres:5432/safeguard"
    assert app["safeguard-dev-app"]["REDIS_URL_FILE"] == f"redis://:{redis}@redis:6379/0"


def test_each_container_alone_mounts_its_secrets_read_only() -> None:
    run = build_stack("dev")
    containers = _by_name(run)
    mounted: dict[str, list[str]] = {}
    for name, container in containers.items():
        if "start" in container.inputs:
            continue
        env = dict(e.split("=", 1) for e in unwrap(container.inputs["envs"]))
        for mount in unwrap(container.inputs.get("mounts") or []):
            if mount["target"].startswith("/run/secrets/"):
                mounted.setdefault(mount["source"], []).append(name)
                assert mount["readOnly"] is True, name
                files = [v for k, v in env.items() if k.endswith("_FILE")]
                assert files and all(f.startswith(mount["target"] + "/") for f in files), name

    assert all(len(names) == 1 for names in mounted.values()), mounted
    assert len(mounted) == 7


def _service_with(container: Container, secrets: dict[str, str]) -> None:
    backend, edge = prepare_networks("safeguard-test", backend_subnet="10.213.0.0/24")
    platform = DockerPlatform(instance="safeguard-test", backend=backend, edge=edge)
    spec = ServiceSpec(name="svc", containers=(container,), secrets=secrets)
    platform.deploy(spec, parent=pulumi.ComponentResource("test:Test", "parent"))


def _reader(**fields: Any) -> Container:
    return Container(
        name="reader", image="busybox:1.36", uid=10001, gid=10001,
        compute=Compute(cpu_request="10m", memory_request="16Mi", cpu_limit="50m",
                        memory_limit="32Mi"),
        probes=Probes(liveness=Probe(check=Exec(command=("true",))),
                      readiness=Probe(check=Exec(command=("true",)))),
        **fields,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"secret_env": {"TOKEN": "TOKEN"}},
            r"container 'reader' reads secret_env \['TOKEN'\] from its environment; Docker "
            "delivers secrets only as files",
        ),
        (
            {"secret_env": {"TOKEN": "TOKEN"}, "secret_files": {"TOKEN_FILE": "TOKN"}},
            r"secret_files name keys \['TOKN'\] that the service's secrets do not have",
        ),
        (
            {"env": {"TOKEN_FILE": "/x"}, "secret_files": {"TOKEN_FILE": "TOKEN"}},
            r"sets \['TOKEN_FILE'\] in env too",
        ),
    ],
)
def test_the_docker_back_end_refuses_secrets_it_would_have_to_put_in_env(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        run_program(
            lambda: _service_with(_reader(**fields), {"TOKEN": "t"}), stack="dev", config={}
        )


# --- files: delivered by carriers into volumes the services mount read-only -------------------


def _by_name(run: StackRun) -> dict[str, Recorded]:
    return {r.inputs["name"]: r for r in run.of_type("index/container:Container")}


def test_files_reach_read_only_containers_only_through_carriers_that_never_run() -> None:
    run = build_stack("dev")
    containers = _by_name(run)
    carriers = {n: r for n, r in containers.items() if r.inputs.get("uploads")}

    assert set(carriers) == {
        f"safeguard-dev-{s}-files"
        for s in ("nginx", "prometheus", "alertmanager", "grafana", "app", "postgres", "redis")
    }
    for name, carrier in containers.items():
        inputs = unwrap(carrier.inputs)
        if name in carriers:
            # The provider extracts uploads at `/`, which a read-only root refuses.
            assert inputs.get("readOnly") is not True, name
            assert (inputs["start"], inputs["mustRun"], inputs["restart"]) == (False, False, "no")
            assert inputs["networkMode"] == "none" and inputs["capabilities"] == {"drops": ["ALL"]}
            assert all(m["volumeOptions"] == {"noCopy": True} for m in inputs["mounts"]), name
            # Every file lands in one of the carrier's volumes, world-readable (uploads are
            # root-owned, the services are not).
            targets = [m["target"] for m in inputs["mounts"]]
            for upload in inputs["uploads"]:
                assert any(upload["file"].startswith(t + "/") for t in targets), upload["file"]
                assert upload["permissions"] == "0444"
        else:
            assert not inputs.get("uploads"), name


def test_services_mount_their_carriers_volumes_read_only_and_start_after_them() -> None:
    run = build_stack("dev")
    containers = _by_name(run)
    for service in ("nginx", "prometheus", "alertmanager", "grafana", "app", "postgres", "redis"):
        carrier = containers[f"safeguard-dev-{service}-files"]
        served = [
            c for n, c in containers.items()
            if n.startswith(f"safeguard-dev-{service}") and "start" not in c.inputs
        ]  # fmt: skip
        carried = {m["source"]: m["target"] for m in unwrap(carrier.inputs)["mounts"]}
        mounted = {m["source"]: m for c in served for m in unwrap(c.inputs).get("mounts") or []}

        assert set(mounted) == set(carried), service
        for source, mount in mounted.items():
            assert mount["target"] == carried[source] and mount["readOnly"] is True, service
            assert mount["volumeOptions"] == {"noCopy": True}
        # The service names the volumes, not the carrier: only this orders the uploads first.
        assert all(carrier.urn in c.dependencies for c in served), service


def test_a_changed_file_gives_a_new_volume_and_secret_files_a_secret_name() -> None:
    def nginx_volume(run: StackRun) -> str:
        return next(
            v.inputs["name"] for v in run.of_type("index/volume:Volume") if v.name == "nginx-config"
        )

    before = build_stack("dev")
    changed = build_stack("dev", **{"edge": json.dumps({"host": "localhost", "burst": 41})})

    assert nginx_volume(before).startswith("safeguard-dev-nginx-config-")
    assert nginx_volume(before) != nginx_volume(changed)
    assert nginx_volume(before) == nginx_volume(build_stack("dev"))
    volumes = {v.name: v.inputs["name"] for v in before.of_type("index/volume:Volume")}
    assert is_secret(volumes["monitoring-alertmanager-config"])
    assert volumes["postgres-data"] == "safeguard-dev-postgres-data"  # data is not renamed


# --- stopping -----------------------------------------------------------------------------------


def test_the_app_is_given_its_whole_drain_before_sigkill() -> None:
    run = build_stack("dev")
    app = _by_name(run)["safeguard-dev-app"]
    env = dict(e.split("=", 1) for e in unwrap(app.inputs["envs"]))
    # The app's own reading of the rendered environment, not a copy of its defaults.
    settings = Settings(
        database_url="postgresql://u:p@h/db",
        redis_url="redis://h",
        **{k.lower(): env[k] for k in ("SHUTDOWN_DELAY_SECONDS", "SHUTDOWN_DRAIN_SECONDS")},
    )
    needed = math.ceil(settings.shutdown_delay_seconds + settings.shutdown_drain_seconds)

    assert app.inputs["stopTimeout"] >= needed + 5
    assert app.inputs["destroyGraceSeconds"] == app.inputs["stopTimeout"] == STOP_GRACE_SECONDS
    for name, container in _by_name(run).items():
        if "start" not in container.inputs:  # carriers are never started, so never stopped
            assert container.inputs["destroyGraceSeconds"] >= 10, name


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_kubernetes_gives_the_app_pods_the_same_grace(stack: str) -> None:
    run = build_stack(stack)
    app = next(
        r
        for r in run.of_type("apps/v1:Deployment")
        if unwrap(r.inputs)["metadata"]["name"] == "app"
    )

    grace = unwrap(app.inputs)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace == STOP_GRACE_SECONDS


# --- ordering and least privilege -------------------------------------------------------------


def test_nginx_starts_after_the_app_it_resolves_at_start() -> None:
    run = build_stack("dev")
    containers = _by_name(run)

    assert containers["safeguard-dev-app"].urn in containers["safeguard-dev-nginx"].dependencies


def test_migrations_get_the_database_and_nothing_else() -> None:
    run = build_stack("dev")
    migrate = _by_name(run)["safeguard-dev-app-migrate"]
    names = {e.split("=", 1)[0] for e in unwrap(migrate.inputs["envs"])}

    assert names == {"APP_ENV", "LOG_LEVEL", "DATABASE_URL_FILE"}


def test_prometheus_gets_no_api_token_on_docker_and_the_back_end_refuses_one() -> None:
    def program() -> None:
        backend, edge = prepare_networks("safeguard-test", backend_subnet="10.213.0.0/24")
        platform = DockerPlatform(instance="safeguard-test", backend=backend, edge=edge)
        server = Container(
            name="reader", image="busybox:1.36", uid=10001, gid=10001,
            compute=Compute(cpu_request="10m", memory_request="16Mi", cpu_limit="50m",
                            memory_limit="32Mi"),
            probes=Probes(liveness=Probe(check=Exec(command=("true",))),
                          readiness=Probe(check=Exec(command=("true",)))),
            mounts=(Mount(volume="api-token", path="/var/run/secrets/kubernetes-api"),),
        )  # fmt: skip
        spec = ServiceSpec(
            name="reader", containers=(server,), volumes=(ApiTokenVolume(name="api-token"),)
        )
        platform.deploy(spec, parent=pulumi.ComponentResource("test:Test", "parent"))

    with pytest.raises(ValueError, match="api-token: a Kubernetes API token exists only on"):
        run_program(program, stack="dev", config={})
    prometheus = next(c for c in _containers() if c["name"] == "safeguard-dev-prometheus")
    assert not [m for m in prometheus.get("mounts", []) if "kubernetes-api" in m["target"]]


def test_the_dev_host_pulls_third_party_images_through_the_mirrors() -> None:
    mirrors = {"docker.io": "mirror.example.com:5000/hub"}
    run = build_stack("dev", images=json.dumps({"registryMirrors": mirrors}))
    pulled = sorted(unwrap(r.inputs)["name"] for r in run.of_type("index/remoteImage:RemoteImage"))
    plain = sorted(
        unwrap(r.inputs)["name"]
        for r in build_stack("dev").of_type("index/remoteImage:RemoteImage")
    )

    assert len(pulled) == len(plain) >= 8
    assert "mirror.example.com:5000/hub/library/postgres:16.4-alpine" in pulled
    for image in pulled:
        from_quay = image.startswith("quay.io/")
        assert from_quay or image.startswith("mirror.example.com:5000/hub/"), image
    assert [i for i in pulled if i.startswith("quay.io/")] == [
        i for i in plain if i.startswith("quay.io/")
    ]
