"""Image references: what a valid and a pinned image is, for components and stack settings alike."""

from __future__ import annotations

import re

from docker_image import reference

_TAG = re.compile(r"^[\w][\w.-]{0,127}$")


def is_pinned_image(image: str) -> bool:
    """True when `image` names an immutable-enough version: a digest, or a tag other than latest."""
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    tag = last.rsplit(":", 1)[1]
    return bool(_TAG.match(tag)) and tag != "latest"


def image_problem(image: str) -> str | None:
    """Why `image` cannot be deployed (None if it can): not a reference as Docker's distribution
    library parses one (docker-image-py follows it), or not pinned."""
    try:
        reference.Reference.parse(image)
    except reference.InvalidReference as error:
        return f"{image!r} is not an image reference ({error})"
    if not is_pinned_image(image):
        return f"{image!r} is not pinned; use an explicit tag other than latest, or a digest"
    return None


def image_digest(image: str) -> str | None:
    """The digest `image` names (`sha256:<hex>`), or None when it names only a tag."""
    return reference.Reference.parse(image)["digest"]
