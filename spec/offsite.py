"""The checks of an off-site copy's settings: the S3-compatible endpoint, the bucket and key
prefix, and the age public keys the dumps are encrypted for. The stack settings and the backup
component both use them, so a value one refuses the other refuses too, with the same words.

Each returns why the value is wrong, or None; the caller names the field.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import bech32

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
"""S3's bucket naming rules, which path-style S3-compatible stores follow too (the stack
files' schema gives it to editors; the checks below add the rest)."""
AGE_RECIPIENT_PATTERN = r"^age1[02-9ac-hj-np-z]{58}$"
"""An age public key's shape: bech32's lower-case alphabet (its checksum is checked below)."""
_BUCKET = re.compile(BUCKET_PATTERN)
_IPV4 = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_AGE_KEY_GROUPS = 52
"""32 bytes of X25519 public key in bech32's 5-bit groups."""


def endpoint_problem(url: str) -> str | None:
    """Why `url` is not an S3 API endpoint, http(s)://host[:port] with no path."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises ValueError
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.username
    ):
        return f"{url!r} is not an S3 endpoint such as https://s3.eu-central-1.amazonaws.com"
    return None


def bucket_problem(name: str) -> str | None:
    """Why `name` is not an S3 bucket name."""
    if not _BUCKET.match(name) or ".." in name or _IPV4.match(name):
        return (
            f"{name!r} is not an S3 bucket name (3 to 63 lower-case letters, digits, '.' and '-', "
            "starting and ending with a letter or digit)"
        )
    return None


def prefix_problem(prefix: str) -> str | None:
    """Why `prefix` cannot come before the dumps' names in their keys."""
    if prefix.startswith("/") or (prefix and not prefix.endswith("/")):
        return f"{prefix!r} must be empty or end in '/', with no leading '/' (such as safeguard/)"
    return None


def age_recipient_problem(key: str) -> str | None:
    """Why `key` is not an age X25519 public key (age1..., bech32 with its checksum), the
    public line `age-keygen -y` prints."""
    hrp, data = bech32.bech32_decode(key)
    if key != key.lower() or hrp != "age" or data is None or len(data) != _AGE_KEY_GROUPS:
        shown = key if len(key) <= 80 else f"{key[:77]}..."
        return (
            f"{shown!r} is not an age public key (age1 and 58 more characters, checksum "
            "included, as age-keygen -y prints it)"
        )
    return None
