"""spec.quantity, the one reader of Kubernetes quantities: what the Docker back end, Redis's
maxmemory and the offline diff's "a claim can only grow" rule get from a quantity."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from spec.quantity import cpu_cores, memory_mb, parse


def test_binary_and_decimal_suffixes_compare_exactly() -> None:
    assert parse("1Gi") == parse("1024Mi") == 2**30
    assert parse("1.5Gi") == parse("1536Mi")
    assert parse("1G") < parse("1Gi")
    assert parse("100m") * 10 == parse("1") == 1
    assert parse("250u") == Fraction(1, 4000)


@pytest.mark.parametrize("text", ["", "1K", "1.2.3Gi", ".", "ten", "-1", "1 Gi", "1e3"])
def test_what_is_not_a_quantity_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse(text)


def test_memory_becomes_whole_mib() -> None:
    assert memory_mb("512Mi") == 512
    assert memory_mb("1Gi") == 1024


@pytest.mark.parametrize("text", ["1.5Gi", "512M", "536870912", "lots"])
def test_memory_other_than_whole_mi_or_gi_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="must be a whole number of Mi or Gi"):
        memory_mb(text)


def test_cpu_in_cores_or_millicores() -> None:
    assert cpu_cores("500m") == Fraction(1, 2)
    assert cpu_cores("2") == 2
    assert cpu_cores("1.5") == Fraction(3, 2)


@pytest.mark.parametrize("text", ["1Gi", "2k", "fast"])
def test_cpu_with_another_suffix_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="must be cores"):
        cpu_cores(text)
