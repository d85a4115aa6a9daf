"""The app's dependencies are pinned alike in the image (app/requirements.txt) and in the
project's environment (the app section of requirements.txt), so the tests run what ships."""

from __future__ import annotations

from tests.support.servers import REPO_ROOT


def _requirements(text: str) -> list[str]:
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def test_the_app_section_of_requirements_txt_is_the_image_s_requirements() -> None:
    root = (REPO_ROOT / "requirements.txt").read_text()
    section = root.split("# The application (app/)\n", 1)[1].split("\n\n", 1)[0]

    assert _requirements(section) == _requirements(
        (REPO_ROOT / "app" / "requirements.txt").read_text()
    )
