"""A real image registry on 127.0.0.1 for the release tests: Debian's docker-registry (the CNCF
distribution registry that GHCR, Docker Hub and most registries speak the protocol of), with
htpasswd logins, and skopeo set up to reach it the way the deploy workflow's steps reach GHCR.

Only what a test machine needs differs from GitHub's runner: the registry's certificate is a
self-signed one for 127.0.0.1, which skopeo (Go's crypto/x509 on Linux) trusts through
SSL_CERT_FILE, and skopeo keeps its logins in a file of the test's own (REGISTRY_AUTH_FILE),
never the machine's. The Docker daemon pulls from it as from any loopback registry, which it
treats as insecure (no certificate check) by default.
"""

from __future__ import annotations

import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.support.programs import DOCKER_REGISTRY, HTPASSWD, OPENSSL, SKOPEO
from tests.support.servers import ServerProcess, free_port, wait_for_http


@dataclass
class RegistryServer:
    """docker-registry serving `root`/storage on a free port, with one htpasswd user."""

    root: Path
    username: str = "release"
    password: str = "release-password"
    port: int = field(default_factory=free_port)
    server: ServerProcess | None = None

    @property
    def host(self) -> str:
        """host:port, as an image reference names the registry."""
        return f"127.0.0.1:{self.port}"

    @property
    def certificate(self) -> Path:
        return self.root / "registry.crt"

    def start(self, timeout: float = 20) -> RegistryServer:
        htpasswd = subprocess.run(
            [HTPASSWD.path(), "-nbB", self.username, self.password],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        (self.root / "htpasswd").write_text(htpasswd)
        key = self.root / "registry.key"
        subprocess.run(
            [OPENSSL.path(), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-keyout", str(key), "-out", str(self.certificate), "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.root / "storage")}},
            "http": {
                "addr": self.host,
                "tls": {"certificate": str(self.certificate), "key": str(key)},
            },
            "auth": {"htpasswd": {"realm": "safeguard-test", "path": str(self.root / "htpasswd")}},
        }
        (self.root / "config.yml").write_text(yaml.safe_dump(config))
        self.server = ServerProcess(self.root, "registry")
        process = self.server.spawn(
            [DOCKER_REGISTRY.path(), "serve", str(self.root / "config.yml")]
        )
        try:
            # The API root answers 401 without a login and 200 with one.
            wait_for_http(
                f"https://{self.username}:{self.password}@{self.host}/v2/", timeout, process
            )
        except (RuntimeError, TimeoutError) as error:
            raise self.server.fail(f"docker-registry did not start: {error}") from error
        return self

    def stop(self) -> int | None:
        return self.server.stop() if self.server is not None else None

    def skopeo_env(self, logins: Path) -> dict[str, str]:
        """What skopeo needs here and not on a runner: this registry's certificate as the one
        it trusts, and `logins` as the file `skopeo login` stores its logins in."""
        return {"SSL_CERT_FILE": str(self.certificate), "REGISTRY_AUTH_FILE": str(logins)}

    def tls(self) -> ssl.SSLContext:
        """A client context that trusts this registry's certificate."""
        return ssl.create_default_context(cafile=self.certificate)


def skopeo(*args: str, env: dict[str, str], timeout: float = 300) -> str:
    """Runs skopeo; fails with its stderr."""
    result = subprocess.run(
        [SKOPEO.path(), *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    if result.returncode != 0:
        raise RuntimeError(f"skopeo {' '.join(args[:2])} failed:\n{result.stderr[-3000:]}")
    return result.stdout
