"""The pack started both ways the CLI starts a Python pack, and driven with the engine's own
sequence of calls (pulumi/pulumi@v3.259.0:pkg/resource/plugin/analyzer_plugin.go,
sdk/python/cmd/pulumi-language-python/main.go#RunPlugin; pulumi/pulumi@v3.220.0 for the shim)."""

from __future__ import annotations

import itertools
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.offline import check
from infra.offline.analyzer import PolicyPackError, PolicyPackProcess, Resource, analyze_spread
from infra.offline.check import check_manifests, check_program
from infra.offline.wire import ASSET_SIG, SIG_KEY
from tests.fixtures import unsafe_program
from tests.support.policies import PACK_DIR, TYPES, container, deployment
from tests.support.probe_pack import received, write_probe_pack

RESOURCE = Resource(type="test:index:Thing", name="thing", properties={"size": 3})
PER_RESOURCE = ["Remediate", "Analyze"]


def _python_on_path(bin_dir: Path) -> Path:
    """A `python3` first on PATH that logs how it was called, then runs this interpreter."""
    bin_dir.mkdir()
    log = bin_dir / "calls.log"
    script = bin_dir / "python3"
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {sys.executable} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log


def _probe(pack: PolicyPackProcess) -> dict:
    pack.configure(None)
    analyzed, _ = pack.analyze_all([RESOURCE])
    messages = [d.message for _, found in analyzed for d in found]
    return received(messages, "Analyze")["thing"]["process"]


def test_language_host_runs_python3_from_path_with_the_absolute_pack_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack_dir = write_probe_pack(tmp_path / "pack")
    log = _python_on_path(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("PULUMI_PYTHON_CMD", raising=False)
    monkeypatch.chdir(tmp_path)

    process = PolicyPackProcess(
        Path("pack"), project="proj", stack="st", dry_run=True, config={"proj:k": "v"}
    )
    with process as pack:
        seen = _probe(pack)

    assert log.read_text().split()[:3] == ["-u", "-m", "pulumi.policy"]
    assert seen["argv"][1:] == [pack.command[-2], str(pack_dir)]
    assert seen["cwd"] == str(pack_dir)
    assert process.command[0] == str(tmp_path / "bin" / "python3")
    assert seen["env"]["PULUMI_STACK"] == "st" and seen["env"]["PULUMI_PROJECT"] == "proj"
    assert seen["env"]["PULUMI_DRY_RUN"] == "true" and seen["dry_run"] is True
    assert json.loads(seen["env"]["PULUMI_CONFIG"]) == {"proj:k": "v"}
    # The language host answers Handshake itself: the pack never sees it.
    assert process.calls == [
        "ConfigureStack",
        "GetPluginInfo",
        "GetAnalyzerInfo",
        "Configure",
        *PER_RESOURCE,
        "AnalyzeStack",
        "Cancel",
    ]


def test_shim_runs_pulumi_python_cmd_with_dot_and_sends_handshake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pack_dir = write_probe_pack(tmp_path / "pack")
    log = _python_on_path(tmp_path / "bin")
    monkeypatch.setenv("PULUMI_PYTHON_CMD", str(tmp_path / "bin" / "python3"))

    process = PolicyPackProcess(pack_dir, stack="st", dry_run=False, launcher="shim")
    with process as pack:
        seen = _probe(pack)

    assert log.read_text().split() == ["-u", "-m", "pulumi.policy", pack.command[-2], "."]
    assert seen["cwd"] == str(pack_dir) and seen["argv"][-1] == "."
    assert seen["env"]["PULUMI_DRY_RUN"] == "false" and seen["dry_run"] is False
    assert process.calls[:2] == ["Handshake", "ConfigureStack"]
    assert process.calls[2:] == [
        "GetPluginInfo",
        "GetAnalyzerInfo",
        "Configure",
        *PER_RESOURCE,
        "AnalyzeStack",
        "Cancel",
    ]


def test_every_resource_is_remediated_before_it_is_analyzed(tmp_path: Path) -> None:
    many = [Resource(type="test:index:Thing", name=f"t{i}") for i in range(20)]

    with PolicyPackProcess(write_probe_pack(tmp_path / "pack")) as pack:
        pack.configure(None)
        analyzed, _ = pack.analyze_all(many)
        calls = pack.calls[pack.calls.index("Configure") + 1 :]

    assert len(analyzed) == 20
    assert calls.count("Remediate") == calls.count("Analyze") == 20
    # The n-th Analyze is sent only after the n-th Remediate.
    for n in range(1, 21):
        position = [i for i, c in enumerate(calls) if c == "Analyze"][n - 1]
        assert calls[:position].count("Remediate") >= n
    assert calls[-1] == "AnalyzeStack"


def test_configure_sends_every_policy_with_properties(tmp_path: Path) -> None:
    with PolicyPackProcess(write_probe_pack(tmp_path / "pack")) as pack:
        sent = pack.configure({"probe-stack": "disabled"})

    assert set(sent) == {"probe-resource", "probe-stack"}
    assert sent["probe-stack"].enforcement_level == "disabled"


def test_the_pack_version_is_pulumipolicy_yaml_s(tmp_path: Path) -> None:
    with PolicyPackProcess(write_probe_pack(tmp_path / "pack", version="2.3.4")) as pack:
        pack.configure(None)
        diagnostics = pack.analyze(RESOURCE)
        plugin = pack.plugin_version

    # The pack reports the SDK's "0.0.1"; the CLI shows PulumiPolicy.yaml's version instead.
    assert pack.info().version == "2.3.4"
    assert {d.policy_pack_version for d in diagnostics} == {"2.3.4"}
    assert plugin  # GetPluginInfo: the policy SDK's version


def test_report_names_the_pack_as_the_cli_does() -> None:
    report = check_program(unsafe_program.program, stack="fixture")

    assert (report.pack_name, report.pack_version) == ("safeguard", "0.1.0")
    assert (
        report.to_text()
        .splitlines()[0]
        .startswith("policy check of stack fixture: pack safeguard@v0.1.0,")
    )
    assert report.to_json()["pack"] == {"name": "safeguard", "version": "0.1.0"}


def test_a_python_without_the_sdk_gets_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    script = bare / "python3"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -I -S "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bare}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("PULUMI_PYTHON_CMD", raising=False)

    with (
        pytest.raises(PolicyPackError, match=r"Python 3\.10 or newer with policies/requirements"),
        PolicyPackProcess(write_probe_pack(tmp_path / "pack"), startup_timeout=30),
    ):
        pass


def test_programs_are_remediated_like_the_engine_does_and_manifests_when_it_matters(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\n")
    remediating = tmp_path / "remediate.json"
    remediating.write_text(json.dumps({"image-tag-pinned": "remediate"}))

    with check.policy_pack("fixture") as pack:
        report = check_program(unsafe_program.program, stack="fixture", pack=pack)
        program_calls = list(pack.calls)
        check_manifests(manifest, pack=pack)
        plain_calls = pack.calls[len(program_calls) :]
        check_manifests(manifest, pack=pack, pack_config=remediating)
        remediate_calls = pack.calls[len(program_calls) + len(plain_calls) :]

    # Every resource of a program, root stack and providers included, as the engine sends it.
    assert (
        program_calls.count("Remediate") == program_calls.count("Analyze") > report.resources // 2
    )
    # Over manifests only when a policy remediates: otherwise its answer is always empty.
    assert "Remediate" not in plain_calls and plain_calls.count("Analyze") == 1
    assert remediate_calls.count("Remediate") == remediate_calls.count("Analyze") == 1


def test_a_failing_analyze_stops_the_run_and_the_reading_naming_the_call_and_the_pack_s_error() -> (
    None
):
    """The input is read ahead of the calls: one call that fails ends the run at once, with the
    pack's own message, and the reading too (an endless input ends)."""
    sent: list[str] = []
    # An asset marker without its fields: the SDK fails to deserialize it (test_pack.py).
    unreadable = Resource(
        type=TYPES["Deployment"], name="bad", properties={"x": {SIG_KEY: ASSET_SIG}}
    )

    def endless() -> Iterator[Resource]:
        for index in itertools.count():
            resource = unreadable if index == 3 else deployment(container(image="nginx:1.27"))
            sent.append(resource.name)
            yield resource

    with PolicyPackProcess(PACK_DIR) as pack:
        pack.configure(None)
        with pytest.raises(PolicyPackError, match=r"Analyze failed: UNKNOWN: .*Invalid asset"):
            pack.analyze_all(endless(), in_flight=4, remediate=False)
        read = len(sent)
        # The pack still serves: a failed call is the call's, not the channel's.
        analyzed, _ = pack.analyze_all([deployment(container(image="nginx:1.27"))])

    assert len(sent) == read  # nothing was read once the run had ended
    assert len(analyzed) == 1


def test_a_stack_pack_gets_analyze_stack_alone_while_the_others_share_the_analyze_calls() -> None:
    """`analyze_spread` over two packs and a stack pack finds what one pack finds, in the
    input's order, and each pack gets its calls in the engine's order: the stack pack
    AnalyzeStack and no Analyze, the others Analyze calls and no AnalyzeStack."""
    root = container(securityContext={"runAsUser": 0, "runAsNonRoot": False})
    resources = [
        deployment(root if index % 7 == 0 else container(), name=f"web{index}", replicas=2)
        for index in range(40)
    ]

    with (
        PolicyPackProcess(PACK_DIR) as one,
        PolicyPackProcess(PACK_DIR) as first,
        PolicyPackProcess(PACK_DIR) as second,
        PolicyPackProcess(PACK_DIR) as stacker,
    ):
        for pack in (one, first, second, stacker):
            pack.configure(None)
        alone = one.analyze_all(resources, remediate=False)
        spread = analyze_spread(
            [first, second], iter(resources), stack_pack=stacker, in_flight=8, remediate=False
        )

    assert spread == alone
    analyzed, stack_findings = spread
    assert [resource.name for resource, _ in analyzed] == [f"web{i}" for i in range(40)]
    assert {d.policy_name for _, found in analyzed for d in found} >= {"k8s-no-root"}
    assert {d.policy_name for d in stack_findings} >= {"k8s-network-policy-coverage"}
    # More resources than a pack keeps in flight: both get some.
    after_configure = [pack.calls[pack.calls.index("Configure") + 1 :] for pack in (first, second)]
    assert all(set(calls) == {"Analyze", "Cancel"} for calls in after_configure)
    assert sum(calls.count("Analyze") for calls in after_configure) == 40
    assert stacker.calls[stacker.calls.index("Configure") + 1 :] == ["AnalyzeStack", "Cancel"]
