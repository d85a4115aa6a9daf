"""A real Docker daemon for the tests: the client, the local images they need, files delivered
the way the Docker provider delivers them, and containers made from the dev stack's rendered
inputs.

No registry is reachable, so every image is made here: a busybox image from Debian's
busybox-static, a Python base from `debootstrap` (both `docker import`ed, and reused while the
tag exists), and the app's image built from app/Dockerfile with BuildKit on that base. Every
container and build uses the host's network: the daemon runs without a bridge
(`dockerd --bridge=none`, as .ci/run starts it) and private addresses are off limits.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.types import Healthcheck, Mount

from tests.support.servers import REPO_ROOT

DOCKER_CLI = "/usr/bin/docker"
"""Debian's docker.io client. It builds with BuildKit when DOCKER_BUILDKIT=1; a newer client
without the buildx plugin refuses to (and an older default builder cannot read RUN --mount)."""
BUSYBOX_IMAGE = "safeguard-test/busybox:latest"
PYTHON_BASE_IMAGE = "safeguard-test/python-base:bookworm"
APP_IMAGE = "safeguard-test/app:test"
POSTGRES_STANDIN_IMAGE = "safeguard-test/postgres-standin:bookworm"
BACKUP_IMAGE = "safeguard-test/backup:test"
TEST_LABEL = "dev.safeguard.test"
"""Label on everything the tests create, so a crashed run's leftovers can be found."""
START_HINT = (
    "start it as .ci/run does: dockerd --bridge=none --iptables=false --ip6tables=false "
    "(Debian packages docker.io, debootstrap, busybox-static)"
)


class DockerUnavailableError(RuntimeError):
    """No Docker daemon answers, or a tool the Docker tests need is missing."""


def connect() -> docker.DockerClient:
    """A client of the local daemon (DOCKER_HOST or the default socket), checked with a ping."""
    if shutil.which(DOCKER_CLI) is None:
        raise DockerUnavailableError(f"{DOCKER_CLI} is missing; {START_HINT}")
    try:
        client = docker.from_env(version="auto", timeout=120)
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerUnavailableError(f"no Docker daemon answers ({exc}); {START_HINT}") from exc
    return client


def cli(*args: str, stdin: bytes | None = None, timeout: float = 120, **env: str) -> str:
    """Runs the docker CLI; fails with its stderr."""
    result = subprocess.run(
        [DOCKER_CLI, *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env={**os.environ, **env},
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"docker {' '.join(args[:3])}… failed ({result.returncode}):\n"
            f"{result.stderr.decode(errors='replace')[-4000:]}"
        )
    return result.stdout.decode(errors="replace")


def has_image(client: docker.DockerClient, tag: str) -> bool:
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


# --- images -----------------------------------------------------------------------------------


def busybox_image(client: docker.DockerClient) -> str:
    """A tiny image: Debian's static busybox with its applets, users app (10001) and nobody."""
    if has_image(client, BUSYBOX_IMAGE):
        return BUSYBOX_IMAGE
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        raise DockerUnavailableError(f"{busybox} is missing; {START_HINT}")
    applets = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777)):
            _add(tar, directory, tarfile.DIRTYPE, mode)
        _add(tar, "bin/busybox", tarfile.REGTYPE, 0o755, busybox.read_bytes())
        for applet in applets:
            if applet != "busybox":
                _add(tar, f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
        passwd = "root:x:0:0::/:/bin/sh\napp:x:10001:10001::/:/bin/false\n"
        passwd += "nobody:x:65534:65534::/:/bin/false\n"
        _add(tar, "etc/passwd", tarfile.REGTYPE, 0o644, passwd.encode())
        _add(tar, "etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\napp:x:10001:\n")
    client.api.import_image(
        src=buffer.getvalue(), repository=BUSYBOX_IMAGE.split(":")[0], tag="latest",
        changes=["ENV PATH=/bin", 'CMD ["/bin/sh"]'],
    )  # fmt: skip
    return BUSYBOX_IMAGE


def _add(
    tar: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", link: str = ""
) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, len(data), link
    tar.addfile(info, io.BytesIO(data) if data else None)


def _debian_mirror() -> str:
    """The first Debian archive in the machine's apt sources, else deb.debian.org."""
    sources = Path("/etc/apt")
    for path in sorted([sources / "sources.list", *sources.glob("sources.list.d/*")]):
        if path.is_file():
            found = re.search(
                r"(?m)^(?:deb|URIs:)\s+(https?://\S+/debian)/?(?:\s|$)", path.read_text()
            )
            if found:
                return found.group(1)
    return "http://deb.debian.org/debian"


def python_base_image(client: docker.DockerClient) -> str:
    """PYTHON_IMAGE for the app's build: Debian bookworm minbase with python3 and venv, made by
    debootstrap (about a minute) once, then reused while the tag exists."""
    if has_image(client, PYTHON_BASE_IMAGE):
        return PYTHON_BASE_IMAGE
    if shutil.which("debootstrap") is None:
        raise DockerUnavailableError(f"debootstrap is missing; {START_HINT}")
    # debootstrap and the tar of the root-owned tree it makes need root (CI runners: sudo).
    as_root = [] if os.geteuid() == 0 else ["sudo", "-n"]
    root = tempfile.mkdtemp(prefix="safeguard-base-")
    try:
        result = subprocess.run(
            [*as_root, "debootstrap", "--variant=minbase",
             "--include=python3,python3-venv,python-is-python3",
             "bookworm", root, _debian_mirror()],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(
                f"debootstrap failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
            )
        # debootstrap copies in the machine's resolver and host name; Docker provides both.
        subprocess.run(
            [*as_root, "sh", "-c",
             ': > "$1/etc/resolv.conf"; echo localhost > "$1/etc/hostname"', "sh", root],
            check=True,
        )  # fmt: skip
        tar = subprocess.Popen(
            [*as_root, "tar", "--numeric-owner", "-C", root, "-c",
             # Downloaded packages, package lists, docs and translations: not needed to run.
             "--exclude=./var/cache/apt/archives/*.deb", "--exclude=./var/lib/apt/lists/*",
             "--exclude=./usr/share/doc/*", "--exclude=./usr/share/man/*",
             "--exclude=./usr/share/locale/*", "."],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert tar.stdout is not None
        imported = subprocess.run(
            [DOCKER_CLI, "import",
             "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["python3"]',
             "-", PYTHON_BASE_IMAGE],
            stdin=tar.stdout, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise RuntimeError(f"importing the base image failed: {imported.stderr}")
    finally:
        subprocess.run([*as_root, "rm", "-rf", root], check=False)
    return PYTHON_BASE_IMAGE


def pip_ca_bundle() -> Path | None:
    """The CA bundle this machine's pip trusts (PIP_CERT, else pip's `cert` setting), if any."""
    configured = os.environ.get("PIP_CERT")
    if not configured:
        result = subprocess.run(
            ["python3", "-m", "pip", "config", "get", "global.cert"],
            capture_output=True, text=True,
        )  # fmt: skip
        configured = result.stdout.strip() if result.returncode == 0 else ""
    return Path(configured) if configured and Path(configured).is_file() else None


def build_app_image(base: str, *, context: Path = REPO_ROOT, tag: str = APP_IMAGE) -> str:
    """app/Dockerfile of `context` built with BuildKit on `base`, pip reaching the index with the
    machine's CA as a build secret (never a layer). Returns the tag; BuildKit's cache makes reruns
    quick."""
    args = ["build", "--network", "host", "--progress", "plain", "-f", "app/Dockerfile"]
    args += ["--build-arg", f"PYTHON_IMAGE={base}", "-t", tag]
    if (bundle := pip_ca_bundle()) is not None:
        args += ["--secret", f"id=pip_cert,src={bundle}"]
    if index := os.environ.get("PIP_INDEX_URL"):
        args += ["--build-arg", f"PIP_INDEX_URL={index}"]
    cli(*args, str(context), timeout=900, DOCKER_BUILDKIT="1")
    return tag


def build_context_copy(destination: Path) -> Path:
    """A copy of the app image's build context (what the root .dockerignore admits: app/, less
    caches) in `destination`, for builds from a changed context."""
    ignored = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".env")
    shutil.copytree(REPO_ROOT / "app", destination / "app", ignore=ignored)
    shutil.copy2(REPO_ROOT / ".dockerignore", destination / ".dockerignore")
    return destination


def postgres_standin_image(client: docker.DockerClient, base: str, *, uid: int = 70) -> str:
    """POSTGRES_STANDIN_IMAGE (tests/support/images/postgres-standin/): Debian's PostgreSQL on
    `base` as the postgres user `uid`:`uid`, standing in for the official image with that user
    (70: the alpine variant the dev stack runs; 999: the Debian variant the backup image is
    built on); built once per uid and content of its directory (half a minute of apt), then
    reused while the tag exists."""
    context = REPO_ROOT / "tests" / "support" / "images" / "postgres-standin"
    digest = hashlib.sha256()
    for path in sorted(context.iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    tag = POSTGRES_STANDIN_IMAGE if uid == 70 else f"{POSTGRES_STANDIN_IMAGE}-{uid}"
    tag = f"{tag}-{digest.hexdigest()[:12]}"
    if has_image(client, tag):
        return tag
    cli(
        "build", "--network", "host", "--build-arg", f"BASE={base}",
        "--build-arg", f"UID={uid}", "-t", tag, str(context), timeout=900,
    )  # fmt: skip
    return tag


def build_backup_image(base: str) -> str:
    """components/files/backup-image/Dockerfile built with BuildKit as RELEASING.md builds it
    (its directory the context), on `base` instead of postgres:16.4-bookworm, pip reaching the
    index with the machine's CA as a build secret. Returns the tag; BuildKit's cache makes reruns
    quick."""
    args = ["build", "--network", "host", "--progress", "plain"]
    args += ["--build-arg", f"POSTGRES_IMAGE={base}", "-t", BACKUP_IMAGE]
    if (bundle := pip_ca_bundle()) is not None:
        args += ["--secret", f"id=pip_cert,src={bundle}"]
    if index := os.environ.get("PIP_INDEX_URL"):
        args += ["--build-arg", f"PIP_INDEX_URL={index}"]
    context = REPO_ROOT / "components" / "files" / "backup-image"
    cli(*args, str(context), timeout=900, DOCKER_BUILDKIT="1")
    return BACKUP_IMAGE


# --- the provider's uploads -------------------------------------------------------------------


def provider_tar(upload: Mapping[str, Any]) -> bytes:
    """One `uploads` entry as kreuzwerker/terraform-provider-docker packs it
    (internal/provider/resource_docker_container_funcs.go, resourceDockerContainerCreate, the
    same from v3.0.2 to v4.5.0): one regular file whose name is the absolute `file`, its mode
    `permissions` in octal (else 0744 if `executable`, else 0644), size and mtime, and nothing
    else: owner 0:0, no directory entries."""
    content = upload.get("content")
    if content is None:
        raise ValueError(f"{upload.get('file')}: only `content` uploads are delivered here")
    data = content.encode()
    if upload.get("permissions"):
        mode = int(upload["permissions"], 8)
    else:
        mode = 0o744 if upload.get("executable") else 0o644
    info = tarfile.TarInfo(upload["file"])  # absolute, as Go's tar.Header{Name: file} keeps it
    info.mode, info.size, info.mtime = mode, len(data), int(time.time())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def deliver(container_id: str, upload: Mapping[str, Any]) -> None:
    """Extracts the provider's tar at `/` of the container, through the same Go client call the
    provider makes (moby client CopyToContainer with default options: PUT
    /containers/{id}/archive?path=/&noOverwriteDirNonDir=true): `docker cp -` is that call."""
    cli("cp", "-", f"{container_id}:/", stdin=provider_tar(upload))


# --- containers from rendered inputs ----------------------------------------------------------

_PROVIDER_SIDE = frozenset(
    {"attach", "destroyGraceSeconds", "logs", "mustRun", "rm", "start", "uploads", "wait",
     "waitTimeout"}
)  # fmt: skip
"""Inputs the provider acts on itself, around the daemon's create: the tests do the same
(start or not, deliver, wait) where it matters."""
_ADAPTED = frozenset({"image", "name", "networksAdvanced", "ports"})
"""Inputs the tests replace: local images, names of their own, the host's network (so also no
published ports: the process listens on the host's loopback itself)."""


def _seconds(value: str) -> int:
    """Docker duration ("5s", "2m", "1h30m") in nanoseconds."""
    units = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
    parts = re.findall(r"(\d+)(ms|s|m|h)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"not a Docker duration: {value!r}")
    return sum(int(n) * units[u] for n, u in parts)


@dataclass
class Created:
    """A container the tests made from rendered inputs."""

    id: str
    name: str
    inputs: Mapping[str, Any]


def create_container(
    client: docker.DockerClient,
    inputs: Mapping[str, Any],
    *,
    image: str,
    name: str,
    volume_names: Mapping[str, str],
    entrypoint: Sequence[str] | None = None,
    command: Sequence[str] | None = None,
    envs: Sequence[str] | None = None,
    healthcheck: Mapping[str, Any] | None = None,
) -> Created:
    """`docker create` with every rendered input the daemon takes (unwrapped wire format, as
    Mocks record it; numbers arrive as floats): user, read-only root, tmpfs, volumes, mounts,
    capabilities, security options, limits, environment, health check, stop timeout, restart
    policy, labels and network mode. Inputs the provider acts on itself and the adapted ones
    are left to the caller; any other input fails the test, so none is dropped unnoticed.

    `volume_names` maps rendered volume names to the tests' own; `entrypoint`, `command`,
    `envs` and `healthcheck` replace the rendered ones where a test must (a stand-in process,
    test servers' URLs).
    """
    unknown = set(inputs) - _PROVIDER_SIDE - _ADAPTED - {
        "capabilities", "command", "cpus", "entrypoints", "envs", "healthcheck", "labels",
        "memory", "memoryReservation", "mounts", "networkMode", "readOnly", "restart",
        "securityOpts", "stopTimeout", "tmpfs", "user", "volumes",
    }  # fmt: skip
    if unknown:
        raise ValueError(f"{inputs.get('name')}: inputs the tests do not apply: {sorted(unknown)}")
    caps = inputs.get("capabilities") or {}
    check = healthcheck if healthcheck is not None else inputs.get("healthcheck")
    network = inputs.get("networkMode") or "host"
    if network not in ("host", "none"):
        raise ValueError(f"{inputs.get('name')}: networkMode {network!r} is not run here")
    host_config = client.api.create_host_config(
        network_mode=network,
        read_only=bool(inputs.get("readOnly")),
        cap_drop=caps.get("drops"),
        cap_add=caps.get("adds"),
        security_opt=inputs.get("securityOpts"),
        tmpfs=dict(inputs.get("tmpfs") or {}),
        mem_limit=f"{int(inputs['memory'])}m" if inputs.get("memory") else None,
        mem_reservation=(
            f"{int(inputs['memoryReservation'])}m" if inputs.get("memoryReservation") else None
        ),
        nano_cpus=int(float(inputs["cpus"]) * 1e9) if inputs.get("cpus") else None,
        binds={
            volume_names[v["volumeName"]]: {
                "bind": v["containerPath"],
                "mode": "ro" if v.get("readOnly") else "rw",
            }
            for v in inputs.get("volumes") or []
        },
        mounts=[
            Mount(
                target=m["target"],
                source=volume_names[m["source"]],
                type=m["type"],
                read_only=bool(m.get("readOnly")),
                no_copy=bool((m.get("volumeOptions") or {}).get("noCopy")),
            )
            for m in inputs.get("mounts") or []
        ],
        restart_policy={"Name": inputs["restart"]} if inputs.get("restart") else None,
    )
    created = client.api.create_container(
        image,
        name=name,
        entrypoint=list(entrypoint) if entrypoint is not None else inputs.get("entrypoints"),
        command=list(command) if command is not None else inputs.get("command"),
        user=inputs.get("user"),
        environment=list(envs) if envs is not None else inputs.get("envs"),
        labels={
            **{label["label"]: label["value"] for label in inputs.get("labels") or []},
            TEST_LABEL: "1",
        },
        healthcheck=_healthcheck(check) if check else None,
        stop_timeout=int(inputs["stopTimeout"]) if "stopTimeout" in inputs else None,
        host_config=host_config,
        # Else docker-py adds proxy variables from ~/.docker/config.json to the environment.
        use_config_proxy=False,
    )
    return Created(id=created["Id"], name=name, inputs=inputs)


def own_volumes(
    client: docker.DockerClient, run: str, *inputs: Mapping[str, Any]
) -> dict[str, str]:
    """A volume of the test's own (named after `run`) for each rendered one the containers
    with these inputs mount or bind."""
    names = {m["source"] for i in inputs for m in i.get("mounts") or []}
    names |= {v["volumeName"] for i in inputs for v in i.get("volumes") or []}
    return {name: create_volume(client, f"sgtest-{run}-{name}") for name in names}


def carry(
    client: docker.DockerClient,
    carrier: Mapping[str, Any],
    *,
    image: str,
    name: str,
    volume_names: Mapping[str, str],
    content: Callable[[str, str], str] = lambda file, text: text,
) -> Created:
    """The carrier made from its rendered inputs and left unstarted, with each upload delivered
    as the provider delivers it; `content(file, text)` may point a URL at the tests' servers."""
    made = create_container(client, carrier, image=image, name=name, volume_names=volume_names)
    for upload in carrier["uploads"]:
        deliver(made.id, {**upload, "content": content(upload["file"], upload["content"])})
    return made


def _healthcheck(check: Mapping[str, Any]) -> Healthcheck:
    # startInterval is sent by the provider but needs API 1.44; Debian's 20.10 daemon (API 1.41)
    # drops it, so during the start period Docker checks every `interval`.
    return Healthcheck(
        test=list(check["tests"]),
        interval=_seconds(check["interval"]) if check.get("interval") else None,
        timeout=_seconds(check["timeout"]) if check.get("timeout") else None,
        retries=int(check["retries"]) if "retries" in check else None,
        start_period=_seconds(check["startPeriod"]) if check.get("startPeriod") else None,
    )


def diff(client: docker.DockerClient, container_id: str) -> list[str]:
    """`docker diff`: "A /path", "C /path", "D /path" lines."""
    kinds = {0: "C", 1: "A", 2: "D"}
    return [f"{kinds[c['Kind']]} {c['Path']}" for c in client.api.diff(container_id) or []]


def health(client: docker.DockerClient, container_id: str) -> str | None:
    state = client.api.inspect_container(container_id)["State"]
    return (state.get("Health") or {}).get("Status")


def wait_healthy(client: docker.DockerClient, container_id: str, timeout: float) -> float:
    """Seconds until Docker reports the container healthy; fails with its logs if not."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        status = health(client, container_id)
        if status == "healthy":
            return time.monotonic() - start
        state = client.api.inspect_container(container_id)["State"]
        if not state["Running"]:
            break
        time.sleep(0.2)
    logs = client.api.logs(container_id).decode(errors="replace")[-4000:]
    raise AssertionError(f"not healthy within {timeout}s ({health(client, container_id)}):\n{logs}")


def remove_leftovers(client: docker.DockerClient) -> None:
    """Everything labelled by the tests: containers first, then their volumes."""
    for container in client.api.containers(all=True, filters={"label": TEST_LABEL}):
        client.api.remove_container(container["Id"], force=True)
    for volume in client.api.volumes(filters={"label": TEST_LABEL}).get("Volumes") or []:
        client.api.remove_volume(volume["Name"], force=True)


def create_volume(client: docker.DockerClient, name: str) -> str:
    client.api.create_volume(name=name, labels={TEST_LABEL: "1"})
    return name


def image_files(client: docker.DockerClient, image: str) -> Iterator[tuple[str, bytes]]:
    """(path, content) of every regular file of the image's filesystem."""
    container = client.api.create_container(image, labels={TEST_LABEL: "1"})
    try:
        stream = client.api.export(container["Id"])
        reader = _ChunkReader(stream)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                if member.isfile():
                    handle = tar.extractfile(member)
                    assert handle is not None
                    yield member.name, handle.read()
    finally:
        client.api.remove_container(container["Id"], force=True)


class _ChunkReader(io.RawIOBase):
    """A file over docker-py's stream of chunks, for tarfile's streaming mode."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
