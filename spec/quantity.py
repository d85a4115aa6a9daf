"""Kubernetes quantities ("250m", "512Mi", "2"): the one parser of requests, limits and sizes.

Components and stack settings write every quantity in Kubernetes' notation, on both platforms;
the Docker back end needs memory in MiB and CPU as a number of cores, and the offline diff
compares volume sizes. Exact fractions, so "1Gi" and "1024Mi" are equal and "100m" is 1/10.
"""

from __future__ import annotations

import re
from fractions import Fraction

PATTERN = r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[kMGTPEmu]|)$"
"""What `parse` accepts, as a regular expression (for JSON schemas)."""
_QUANTITY = re.compile(PATTERN)
_FACTORS: dict[str, int | Fraction] = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "m": Fraction(1, 10**3),
    "u": Fraction(1, 10**6),
}


def _parts(quantity: str) -> tuple[str, str] | None:
    match = _QUANTITY.match(quantity)
    return (match.group(1), match.group(2)) if match else None


def parse(quantity: str) -> Fraction:
    """The value of `quantity` in base units (bytes, cores); ValueError when it is not one."""
    parts = _parts(quantity)
    if parts is None:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity (such as 250m, 512Mi or 2)")
    return Fraction(parts[0]) * _FACTORS[parts[1]]


def memory_mb(quantity: str) -> int:
    """A memory quantity in Mi or Gi ("512Mi", "1Gi") as a number of MiB."""
    parts = _parts(quantity)
    if parts is None or parts[1] not in ("Mi", "Gi") or not parts[0].isdigit():
        raise ValueError(f"memory quantity {quantity!r} must be a whole number of Mi or Gi")
    return int(parse(quantity) / _FACTORS["Mi"])


def cpu_cores(quantity: str) -> Fraction:
    """A CPU quantity in cores ("2", "0.5") or millicores ("500m") as a number of cores."""
    parts = _parts(quantity)
    if parts is None or parts[1] not in ("", "m"):
        raise ValueError(f"cpu quantity {quantity!r} must be cores (2, 0.5) or millicores (500m)")
    return parse(quantity)
