"""The policy pack as its own process, started once for the tests of this package and driven
over the Analyzer gRPC protocol exactly as the Pulumi engine drives it (infra/offline/analyzer.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.offline.analyzer import PolicyPackProcess
from tests.support.policies import CONFIG_DIR, PACK_DIR


@pytest.fixture(scope="package")
def pack_process() -> Iterator[PolicyPackProcess]:
    with PolicyPackProcess(PACK_DIR) as process:
        yield process


@pytest.fixture
def pack(pack_process: PolicyPackProcess) -> PolicyPackProcess:
    """The pack with its default configuration (what `pulumi preview` uses without a file)."""
    pack_process.configure(None)
    return pack_process


@pytest.fixture
def production(pack_process: PolicyPackProcess) -> PolicyPackProcess:
    pack_process.configure(CONFIG_DIR / "production.json")
    return pack_process
