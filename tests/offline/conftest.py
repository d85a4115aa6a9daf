"""One pack process per test module of the offline tool, for the tests that call the check
library (the command line starts its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.offline import check
from infra.offline.analyzer import PolicyPackProcess


@pytest.fixture(scope="module")
def pack() -> Iterator[PolicyPackProcess]:
    with check.policy_pack("fixture") as process:
        yield process
