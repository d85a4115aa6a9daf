"""The offline tool's command line as users meet it: help written for them, one answer to an
unknown stack from every command, no traceback when a pipe's reader stops reading, and the
check's report formats (colour on a terminal only, markdown for review, a JSON error object)."""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.__main__ import main
from infra.offline.analyzer import PolicyPackProcess
from infra.offline.check import ReportWarning, check_program
from infra.offline.check.report import MARKDOWN_LIMIT
from infra.offline.runtime import PROJECT_ROOT
from tests.fixtures import unsafe_program
from tests.support.manifests import workload

ANSI = "\033["


def infra(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two compliant workloads and one whose container may run as root."""
    directory = tmp_path_factory.mktemp("manifests")
    for index in range(2):
        (directory / f"svc-{index}.yaml").write_text(yaml.safe_dump_all(workload(index)))
    root = workload(2)
    security = root[0]["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    security["runAsUser"] = 0
    (directory / "svc-2.yaml").write_text(yaml.safe_dump_all(root))
    return directory


# --- help and the unknown stack --------------------------------------------------------------


def test_help_is_written_for_users(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    out = capsys.readouterr().out

    assert exited.value.code == 0
    assert "Run safeguard's Pulumi program offline" in out
    for command in ("render", "check", "diff"):
        assert f"python -m infra {command} --stack" in out
    assert "exit codes:" in out and "2 the command could not run" in out
    assert "configure_parser" not in out and "handler" not in out


def test_each_command_has_help_with_its_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("render", "check", "diff"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "--stack" in out and "exit codes:" in out, command


def test_an_unknown_stack_gets_one_message_and_exit_code_from_every_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    answers = {}
    for command, extra in (
        ("render", ["--out", str(tmp_path)]),
        ("check", []),
        ("diff", ["--base", "HEAD"]),
        ("diff", ["--base-dir", str(tmp_path)]),
    ):
        code = main([command, "--stack", "nope", *extra])
        out, err = capsys.readouterr()
        answers[(command, *extra[:1])] = (code, err, out)

    expected = "no stack 'nope': there is no Pulumi.nope.yaml (stacks: dev, production, staging)\n"
    assert set(answers.values()) == {(2, expected, "")}, answers


# --- a pipe whose reader stops reading (`| head`) --------------------------------------------


def _closed_reader(*args: str) -> tuple[int, str]:
    """Run `python -m infra ARGS` with stdout a pipe nobody reads: closed before any output."""
    process = subprocess.Popen(
        [sys.executable, "-m", "infra", *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    err = process.stderr.read()
    return process.wait(timeout=120), err


def test_no_traceback_when_the_reader_of_stdout_goes_away(manifests: Path, tmp_path: Path) -> None:
    rendered = infra("render", "--stack", "dev", "--out", str(tmp_path))
    assert rendered.returncode == 0, rendered.stderr

    runs = {
        "check": _closed_reader("check", "--manifests", str(manifests)),
        "check-json": _closed_reader("check", "--manifests", str(manifests), "--json"),
        "render": _closed_reader("render", "--stack", "dev", "--out", str(tmp_path / "again")),
        "diff": _closed_reader("diff", "--stack", "dev", "--base-dir", str(tmp_path)),
    }

    for name, (_, err) in runs.items():
        assert "Traceback" not in err and "BrokenPipe" not in err, (name, err)
        assert "Exception ignored" not in err, (name, err)
    # The verdict stands: the reader left, the check's finding did not.
    assert {name: code for name, (code, _) in runs.items()} == {
        "check": 1,
        "check-json": 1,
        "render": 0,
        "diff": 0,
    }


def test_checking_manifests_imports_neither_the_program_nor_its_settings() -> None:
    """The check of manifests starts its packs as soon as it can: it never waits for what only
    a program needs (pydantic's stack settings, the Kubernetes SDK, the mocks)."""
    script = (
        "import sys\n"
        "from infra.offline.cli import _parser\n"
        "_parser('check')\n"
        "import infra.offline.check.manifests\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True
    )

    assert loaded.returncode == 0, loaded.stderr
    modules = set(loaded.stdout.split())
    assert "infra.offline.check.manifests" in modules
    program = {"stacks", "pydantic", "pulumi_kubernetes", "infra.offline.runtime", "infra.program"}
    assert not program & modules


def test_checking_manifests_starts_its_packs_before_importing_grpc_or_the_sdk(
    manifests: Path,
) -> None:
    """The packs boot while the check imports gRPC and the Pulumi SDK (check/early.py)."""
    script = (
        "import json, subprocess, sys\n"
        "seen = []\n"
        "real = subprocess.Popen.__init__\n"
        "def spy(self, args, *rest, **options):\n"
        "    if 'pulumi.policy' in args:\n"
        "        heavy = ('grpc', 'pulumi', 'google.protobuf')\n"
        "        seen.append([m for m in heavy if m in sys.modules])\n"
        "    real(self, args, *rest, **options)\n"
        "subprocess.Popen.__init__ = spy\n"
        "from infra.offline.cli import main\n"
        f"code = main(['check', '--manifests', {str(manifests)!r}])\n"
        "print(json.dumps({'code': code, 'seen': seen}))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True
    )

    outcome = json.loads(run.stdout.splitlines()[-1])
    assert outcome == {"code": 1, "seen": [[]]}, run.stderr


# --- report formats --------------------------------------------------------------------------


def test_format_json_and_the_json_flag_print_the_same_report(manifests: Path) -> None:
    flag = infra("check", "--manifests", str(manifests), "--json")
    option = infra("check", "--manifests", str(manifests), "--format", "json")

    assert flag.returncode == option.returncode == 1
    assert json.loads(flag.stdout) == json.loads(option.stdout)
    assert json.loads(flag.stdout)["summary"]["mandatory"] == 1


def test_format_and_json_flag_together_are_refused(manifests: Path) -> None:
    both = infra("check", "--manifests", str(manifests), "--json", "--format", "text")

    assert both.returncode == 2 and "not allowed with argument" in both.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--stack", "nope"],
        ["--manifests", "/nonexistent/manifests"],
        [],
    ],
    ids=["unknown-stack", "missing-path", "no-target"],
)
def test_json_prints_an_error_object_when_the_check_cannot_run(args: list[str]) -> None:
    result = infra("check", *args, "--format", "json")

    error = json.loads(result.stdout)
    assert result.returncode == 2 and error["exit_code"] == 2 and error["passed"] is False
    assert error["error"] and error["error"] in result.stderr


def test_markdown_says_when_the_check_cannot_run() -> None:
    result = infra("check", "--stack", "nope", "--format", "markdown")

    assert result.returncode == 2
    assert result.stdout.startswith("### Policy check of stack `nope`: :x: **could not run**")
    assert "no stack 'nope'" in result.stdout


def _on_a_terminal(*args: str, **env: str) -> str:
    """The output of `python -m infra ARGS` with stdout a pseudo-terminal."""
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "infra", *args],
        cwd=PROJECT_ROOT,
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env={**{k: v for k, v in os.environ.items() if k != "NO_COLOR"}, **env},
    ) as process:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closes with the process
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode()


def test_text_is_coloured_on_a_terminal_only(manifests: Path) -> None:
    terminal = _on_a_terminal("check", "--manifests", str(manifests))
    no_color = _on_a_terminal("check", "--manifests", str(manifests), NO_COLOR="1")
    piped = infra("check", "--manifests", str(manifests)).stdout

    assert f"{ANSI}1;31m[mandatory]{ANSI}0m k8s-no-root" in terminal
    assert f"{ANSI}1;31mFAILED{ANSI}0m: 1 mandatory violation" in terminal
    assert ANSI not in no_color and "FAILED: 1 mandatory violation" in no_color
    assert ANSI not in piped and "[mandatory] k8s-no-root" in piped


def test_markdown_groups_by_policy_with_counts_and_lists_exemptions(
    pack: PolicyPackProcess,
) -> None:
    report = check_program(unsafe_program.program, stack="fixture", pack=pack)

    text = report.to_markdown()
    lines = text.splitlines()

    assert lines[0] == "### Policy check of stack `fixture`: :x: **failed**"
    assert lines[2].startswith(
        "7 mandatory violations and 1 advisory violation in 3 resources; 1 exemption; 0 warnings."
    )
    assert "| `k8s-probes` | mandatory | 2 | 1 |" in lines
    assert "| `k8s-network-policy-coverage` | advisory | 1 | 1 |" in lines
    headings = [line for line in lines if line.startswith("#### ")]
    # Mandatory first, the most violated policy first.
    assert headings[:4] == [
        "#### `k8s-probes` (mandatory): 2 violations",
        "#### `no-wildcard-cors` (mandatory): 2 violations",
        "#### `docker-healthcheck` (mandatory): 1 violation",
        "#### `docker-no-root` (mandatory): 1 violation",
    ]
    assert headings[-2] == "#### `k8s-network-policy-coverage` (advisory): 1 violation"
    assert headings[-1] == "#### 1 exemption: checks skipped on purpose, review the reasons"
    exemption = lines[lines.index(headings[-1]) + 2]
    assert exemption.startswith(
        "- `docker-healthcheck` on `docker:index/container:Container` `exempt-migrate`: "
    )
    assert "exempted:" not in exemption and "[advisory]" not in text


def test_markdown_escapes_messages_and_stays_within_a_comment(pack: PolicyPackProcess) -> None:
    report = check_program(unsafe_program.program, stack="fixture", pack=pack)
    odd = (ReportWarning(kind="test", message="a <b> | *c*"),)
    many = dataclasses.replace(report, violations=report.violations * 400)

    text = many.to_markdown()

    assert len(text) <= MARKDOWN_LIMIT
    assert "| `k8s-probes` | mandatory | 800 | 1 |" in text
    assert "run `python -m infra check --stack fixture` to see them all" in text
    assert r"- a \<b\> \| \*c\*" in dataclasses.replace(report, warnings=odd).to_markdown()
