"""The README's first quick-start command, as the README writes it, on Debian 12 as a new user
finds it: `python3` with pip, so pip refuses to install into it (PEP 668), and no python3-venv,
so it cannot make a virtualenv either; no server, no `python` command. The checkout goes into a
container of that image; the command must leave a venv that also runs from a subdirectory."""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
from pathlib import Path

import docker
import pytest

from tests.support.dockerd import DOCKER_CLI, cli, has_image, pip_ca_bundle, python_base_image
from tests.support.project import ROOT, copy_checkout

pytestmark = pytest.mark.timeout(900)

STOCK_DEBIAN = "safeguard-test/debian-stock:bookworm"
PIP_CACHE = "safeguard-test-pip-cache"
_STOCK_DOCKERFILE = """\
FROM {base}
RUN apt-get update -qq \\
    && apt-get install -y -qq --no-install-recommends python3-pip >/dev/null \\
    && apt-get purge -y -qq python3-venv python3.11-venv python-is-python3 >/dev/null \\
    && rm -rf /var/lib/apt/lists/*
"""


def quick_start() -> list[str]:
    """The commands of the README's quick start, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Quick start\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the README's quick start has no sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


@pytest.fixture(scope="session")
def stock_debian(docker_client: docker.DockerClient) -> str:
    """Debian bookworm with python3 and python3-pip, without python3-venv: made once from the
    debootstrapped base, reused while the tag exists."""
    if not has_image(docker_client, STOCK_DEBIAN):
        dockerfile = _STOCK_DOCKERFILE.format(base=python_base_image(docker_client))
        cli("build", "--network", "host", "-q", "-t", STOCK_DEBIAN, "-", stdin=dockerfile.encode())
    return STOCK_DEBIAN


def _archive(root: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(root, arcname=".")
    return buffer.getvalue()


def test_the_first_command_works_on_stock_debian_12(stock_debian: str, tmp_path: Path) -> None:
    first = quick_start()[0]
    script = f"""
set -u
mkdir /src && tar -x -C /src && cd /src
echo "--- stock: pip"; python3 -m pip install --dry-run pyyaml 2>&1 | grep -m1 externally-managed
echo "--- stock: venv"; python3 -m venv /tmp/probe 2>&1 | head -1
echo "--- first command"
{first}
echo "--- exit $?"
cd docs && /src/.venv/bin/python -m infra check --help | head -1
cd /src/bench && /src/.venv/bin/python gate_speed.py --help | head -1
"""
    # pip's cache outlives the container (downloads only: every install is still made anew).
    run = ["run", "--rm", "-i", "--network", "host", "-v", f"{PIP_CACHE}:/root/.cache/pip"]
    if (bundle := pip_ca_bundle()) is not None:
        run += ["-v", f"{bundle}:/etc/ssl/host-ca.pem:ro", "-e", "PIP_CERT=/etc/ssl/host-ca.pem"]
    result = subprocess.run(
        [DOCKER_CLI, *run, stock_debian, "bash", "-c", script],
        input=_archive(copy_checkout(tmp_path / "checkout")),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=850,
    )
    output = result.stdout.decode(errors="replace")
    stock, _, rest = output.partition("--- first command")
    # The image is what a new user has: pip refuses the system Python, venv cannot be made.
    assert "externally-managed-environment" in stock, stock
    assert "because ensurepip is not" in stock, stock
    ran, _, after = rest.partition("--- exit ")
    assert after.startswith("0\n"), output[-6000:]
    assert "externally-managed-environment" not in ran
    assert "installing python3-venv" in ran
    assert "PASSED: 0 mandatory" in ran
    # From a subdirectory, inside the venv: the tool and the bench scripts find the project.
    assert "usage: python -m infra check" in after, after
    assert "usage: python -m bench.gate_speed" in after, after
