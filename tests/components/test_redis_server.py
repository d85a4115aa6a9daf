"""The dev stack's Redis start script and probe, as rendered, run with the real redis-server
and redis-cli: the password comes from the file REDIS_PASSWORD_FILE names, as the carrier
delivers it, and never from the environment."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.support.mocks import build_stack, unwrap
from tests.support.servers import free_port, wait_for_port


def _rendered(name: str) -> dict[str, Any]:
    run = build_stack("dev")
    return next(
        unwrap(r.inputs)
        for r in run.of_type("index/container:Container")
        if unwrap(r.inputs)["name"] == name
    )


def _on_loopback(script: str, *, port: int, data: Path, server: str, cli: str) -> str:
    """The rendered script with the port, the data directory and the programs' paths moved to
    the test's; nothing else of it changes."""
    moved = script.replace(
        "exec redis-server --port 6379 --dir /data",
        f"exec {server} --bind 127.0.0.1 --port {port} --dir {data}",
    ).replace("redis-cli -h 127.0.0.1", f"{cli} -h 127.0.0.1 -p {port}")
    assert moved != script
    return moved


def test_redis_and_its_probe_read_the_password_from_the_delivered_file(
    redis_programs: tuple[str, str], tmp_path: Path
) -> None:
    server_path, cli = redis_programs
    main = _rendered("safeguard-dev-redis")
    uploads = _rendered("safeguard-dev-redis-files")["uploads"]
    env = dict(e.split("=", 1) for e in main["envs"])
    assert set(env) == {"REDIS_PASSWORD_FILE"}
    (password,) = [u["content"] for u in uploads if u["file"] == env["REDIS_PASSWORD_FILE"]]
    (tmp_path / "password").write_text(password)
    (tmp_path / "data").mkdir()
    where = {"port": free_port(), "data": tmp_path / "data", "server": server_path, "cli": cli}
    shell, flag, script = main["entrypoints"]
    check, probe_shell, probe_flag, probe = main["healthcheck"]["tests"]
    assert (shell, flag, check, probe_shell, probe_flag) == ("sh", "-c", "CMD", "sh", "-c")
    process_env = {"PATH": "/usr/bin:/bin", "REDIS_PASSWORD_FILE": str(tmp_path / "password")}

    server = subprocess.Popen(
        ["sh", "-c", _on_loopback(script, **where)],
        env=process_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(where["port"])
        probe_run = ["sh", "-c", _on_loopback(probe, **where)]
        assert subprocess.run(probe_run, env=process_env).returncode == 0
        anonymous = subprocess.run(
            [cli, "-h", "127.0.0.1", "-p", str(where["port"]), "ping"],
            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert "NOAUTH" in anonymous.stdout + anonymous.stderr
        (tmp_path / "wrong").write_text(f"not-{password}")
        wrong = {**process_env, "REDIS_PASSWORD_FILE": str(tmp_path / "wrong")}
        assert subprocess.run(probe_run, env=wrong, capture_output=True).returncode != 0
    finally:
        server.terminate()
        server.wait(timeout=10)
