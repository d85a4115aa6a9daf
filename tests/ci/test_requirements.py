"""The app's dependencies: bounded alike for the image (app/requirements.txt) and in the project's
environment (the app section of requirements.txt), so the tests run what ships; the image
installs them from a lock with hashes made from those bounds, on a base pinned by digest."""

from __future__ import annotations

import re

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import locks
from tests.support.servers import REPO_ROOT


def _requirements(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def test_the_app_section_of_requirements_txt_is_the_image_s_requirements() -> None:
    root = (REPO_ROOT / "requirements.txt").read_text()
    section = root.split("# The application (app/)\n", 1)[1].split("\n\n", 1)[0]

    assert _requirements(section) == _requirements(
        (REPO_ROOT / "app" / "requirements.txt").read_text()
    )


def test_the_lock_pins_every_app_requirement_within_its_bounds_with_hashes() -> None:
    locked = {pin.name: pin for pin in locks.pins()}
    wanted = [
        Requirement(line)
        for line in _requirements((REPO_ROOT / "app" / "requirements.txt").read_text())
    ]

    assert wanted
    for requirement in wanted:
        pin = locked[canonicalize_name(requirement.name)]
        assert pin.version is not None and pin.version in requirement.specifier, requirement
    for pin in locked.values():
        assert pin.version is not None, f"{pin.requirement}: not an exact pin"
        assert pin.hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in pin.hashes)


def test_the_lock_is_made_from_app_requirements_for_the_image_s_python() -> None:
    # Renovate's pip-compile manager re-runs this header's command to update the lock, so it
    # must name the sources and take only options that manager passes on (renovate 44.39,
    # lib/modules/manager/pip-compile/common.ts: `--python-platform` is not among them).
    command = locks.header()
    base = _dockerfile_base()

    assert command[:3] == ["uv", "pip", "compile"]
    assert [w for w in command[3:] if not w.startswith("-")] == ["app/requirements.txt"]
    assert "--generate-hashes" in command
    assert "--output-file=app/requirements.lock" in command
    python = next(w.split("=", 1)[1] for w in command if w.startswith("--python-version="))
    assert base.startswith(f"python:{python}-"), (python, base)


def _dockerfile_base() -> str:
    dockerfile = (REPO_ROOT / "app" / "Dockerfile").read_text()
    return re.search(r"(?m)^ARG PYTHON_IMAGE=(\S+)$", dockerfile).group(1)  # type: ignore[union-attr]


def test_the_image_builds_on_a_base_pinned_by_digest_and_installs_the_lock() -> None:
    dockerfile = (REPO_ROOT / "app" / "Dockerfile").read_text()
    stages = re.findall(r"(?m)^FROM (\S+)", dockerfile)
    install = re.search(r"pip install ([^\n]+)", dockerfile).group(1).split()  # type: ignore[union-attr]

    assert re.fullmatch(r"python:3\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", _dockerfile_base())
    assert stages == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    assert "COPY app/requirements.lock /tmp/requirements.lock" in dockerfile
    assert install[:4] == [
        "--require-hashes",
        "--only-binary=:all:",
        "-r",
        "/tmp/requirements.lock",
    ]
