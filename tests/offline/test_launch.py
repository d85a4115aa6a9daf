"""A pack started before the check imports gRPC (infra/offline/launch.py, check/early.py): its
engine address is held until the engine serves it, it is driven like a pack started by
`PolicyPackProcess` itself, and it never outlives the check."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from infra.offline import check
from infra.offline.analyzer import PolicyPackProcess, Resource
from infra.offline.check import CheckError, early
from infra.offline.launch import PackLaunch
from infra.offline.stack_files import UnknownStackError
from tests.support.probe_pack import write_probe_pack


def _bind(port: int) -> int:
    """0 if a plain socket can bind 127.0.0.1:`port`, else the errno."""
    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as error:
        return error.errno or -1
    finally:
        probe.close()
    return 0


def test_the_engine_address_is_held_until_the_engine_serves_it(tmp_path: Path) -> None:
    pack_dir = write_probe_pack(tmp_path / "pack")
    started = PackLaunch(pack_dir=pack_dir, stack="st").start()
    try:
        # Nothing else can take the port between the pack's start and the engine's.
        assert _bind(started.engine_port) == errno.EADDRINUSE
        assert started.command[-2] == started.engine_address

        process = PolicyPackProcess(pack_dir, stack="st")
        process.start(started)
        try:
            with socket.create_connection(("127.0.0.1", started.engine_port), timeout=5):
                pass  # the engine's own server listens there now
            process.configure(None)
            analyzed, _ = process.analyze_all([Resource(type="test:index:Thing", name="t")])
            assert len(analyzed) == 1
            assert process.command == started.command
        finally:
            process.stop()
        assert started.process.poll() is not None
    finally:
        started.stop()


def test_a_pack_started_for_another_stack_is_not_adopted(tmp_path: Path) -> None:
    pack_dir = write_probe_pack(tmp_path / "pack")
    started = PackLaunch(pack_dir=pack_dir, stack="staging").start()
    try:
        with pytest.raises(ValueError, match="stack='staging'"):
            PolicyPackProcess(pack_dir, stack="production").start(started)
    finally:
        started.stop()


def test_packs_started_early_never_outlive_the_check(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\n")

    with (
        pytest.raises(RuntimeError, match="the check failed"),
        check.packs_for_manifests(manifest, None) as started,
    ):
        assert len(started) == 1 and started[0].process.poll() is None
        raise RuntimeError("the check failed")
    assert started[0].process.poll() is not None


def test_nothing_starts_for_an_unknown_stack_or_a_path_without_manifests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts: list[PackLaunch] = []
    monkeypatch.setattr(PackLaunch, "start", lambda launch: starts.append(launch))

    with (
        pytest.raises(CheckError, match=r"holds no \.yaml or \.yml files"),
        check.packs_for_manifests(tmp_path, None),
    ):
        pytest.fail("no pack may start")
    with pytest.raises(UnknownStackError, match="qa"), check.packs_for_manifests(tmp_path, "qa"):
        pytest.fail("no pack may start")
    assert starts == []


def test_a_check_spread_over_packs_starts_one_more_for_analyze_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pack alone answers every call; packs that share the Analyze calls get one more,
    which answers AnalyzeStack alone (`check.shards`). Every one is stopped with the check."""
    manifest = tmp_path / "m.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\n")
    events: list[str] = []

    class Started:
        def stop(self) -> None:
            events.append("stop")

    def start(launch: PackLaunch) -> Started:
        events.append("start")
        return Started()

    monkeypatch.setattr(PackLaunch, "start", start)
    started = {}
    for count in (1, 2, 3):
        monkeypatch.setattr(early, "pack_count", lambda size, count=count: count)
        events.clear()
        with check.packs_for_manifests(manifest, None) as packs:
            started[count] = len(packs)
        assert events == ["start"] * len(packs) + ["stop"] * len(packs)

    assert started == {1: 1, 2: 3, 3: 4}
