"""The offline tool's command line run in-process, as the tests of its commands call it."""

from __future__ import annotations

import pytest

from infra.__main__ import main


def run_check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`python -m infra check ARGS`: (exit code, stdout, stderr)."""
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err
