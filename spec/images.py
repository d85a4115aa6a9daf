"""Image references: what a valid and a pinned image is, for components and stack settings alike;
the registry an image comes from, and the same image through a mirror of that registry."""

from __future__ import annotations

import re
from collections.abc import Mapping

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


def registry_and_path(image: str) -> tuple[str, str]:
    """The registry `image` is pulled from and its repository's path there, as Docker's
    distribution library normalizes a name (distribution/reference normalize.go,
    splitDockerDomain): the first component is the registry only if it has a dot or a port or
    is localhost; else the name is Docker Hub's, where a single component is an official image
    (`postgres` is docker.io's `library/postgres`)."""
    name = reference.Reference.parse(image)["name"]
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == reference.LOCALHOST):
        registry, path = first, rest
    else:
        registry, path = reference.DEFAULT_DOMAIN, name
    if registry == reference.LEGACY_DEFAULT_DOMAIN:
        registry = reference.DEFAULT_DOMAIN
    if registry == reference.DEFAULT_DOMAIN and "/" not in path:
        path = f"{reference.OFFICIAL_REPO_NAME}/{path}"
    return registry, path


def mirrored(image: str, mirrors: Mapping[str, str]) -> str:
    """`image` pulled through the mirror `mirrors` names for its registry (a prefix such as
    `harbor.example.com/dockerhub`, under which the mirror serves that registry's paths), tag
    and digest kept; unchanged when its registry has no mirror."""
    registry, path = registry_and_path(image)
    prefix = mirrors.get(registry)
    if prefix is None:
        return image
    parsed = reference.Reference.parse(image)
    tag = f":{parsed['tag']}" if parsed["tag"] else ""
    digest = f"@{parsed['digest']}" if parsed["digest"] else ""
    return f"{prefix.rstrip('/')}/{path}{tag}{digest}"


def registry_problem(registry: str) -> str | None:
    """Why `registry` is not the registry host an image reference names (None if it is)."""
    try:
        found, _ = registry_and_path(f"{registry}/x")
    except reference.InvalidReference:
        found = None
    if found != registry or registry != registry.lower():
        return (
            f"{registry!r} is not a registry host as image references name one (lowercase, "
            "with a dot or a port, or localhost; Docker Hub is docker.io)"
        )
    return None


def mirror_problem(prefix: str) -> str | None:
    """Why `prefix` cannot stand before an image's path (None if it can): it must start with a
    registry host, or Docker would read its first part as a Docker Hub account."""
    host = prefix.split("/", 1)[0]
    try:
        reference.Reference.parse(f"{prefix.rstrip('/')}/x:1")
    except reference.InvalidReference as error:
        return f"{prefix!r} cannot prefix an image reference ({error})"
    if registry_problem(host) is not None:
        return (
            f"{prefix!r} must start with the mirror's registry host (a dot or a port, or "
            f"localhost), else {host!r} is read as a Docker Hub account"
        )
    return None
