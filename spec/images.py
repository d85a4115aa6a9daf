"""Image references: what counts as a pinned image, for components and stack settings alike."""

from __future__ import annotations

import re

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
