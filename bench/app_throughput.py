"""App throughput, directly and behind the project's nginx, measured with wrk on loopback.

Starts a real PostgreSQL and Redis (tests.support.servers), the app (`python -m app`, production
settings) and nginx with the configuration `render_nginx_conf` produces for the stacks, with
only ports, paths, the host name (127.0.0.1) and the edge's per-client limits changed
(`--edge-rate`, `--edge-burst`, `--edge-connections`: from one address, `limit_req` and
`limit_conn` would otherwise answer most of a benchmark's requests with 429). Each public
endpoint is hit directly and through nginx back to back, so the nginx/direct ratio compares
runs made minutes apart on the same machine; the probe `/health/live` is internal (the edge
does not route it) and is measured directly only.

    python -m bench.app_throughput [--duration 10] [--connections 32] [--threads 2]
                                   [--workers 2] [--rate-limit 1000000/minute] [--json out.json]
                                   [--only live,read,read-miss,list,write] [--redis-down]

`read` asks for one item over and over; `read-miss` for items at random among MISS_ITEMS seeded
rows (PostgreSQL's buffer cache still holds them all; the item cache in Redis this compared,
since dropped, missed on nearly every one). `--redis-down` stops Redis after seeding: the app
then runs on its Redis breaker, rate limiting failing open. `--otlp-sink` turns tracing on
(OTEL_EXPORTER_OTLP_ENDPOINT) towards a loopback receiver that accepts every export and keeps
nothing, so its cost is the app's: spans made, batched, encoded and sent.

Any non-2xx answer or socket error fails the run (exit 1): a benchmark that measures error
pages measures nothing.
"""

from __future__ import annotations

import argparse
import http.server
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from bench._common import (
    REPO_ROOT,
    BenchError,
    argument_parser,
    print_machine,
    tree_cpu_seconds,
    write_json,
)
from components.nginx import NginxConf, render_nginx_conf
from tests.support.app_process import app_env
from tests.support.servers import (
    PostgresServer,
    RedisServer,
    ServerProcess,
    free_port,
    new_temp_root,
    wait_for_port,
)

SECRET = "b" * 48
# done() prints one JSON line wrk's text output would make us scrape; every script shares it.
_DONE = """
done = function(summary, latency, requests)
  io.write(string.format(
    '\\nWRK_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""
MISS_ITEMS = 500_000
# Each wrk thread has its own Lua state: seeded apart, their random ids do not repeat each other.
_RANDOM_ITEM = """
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("seed", threads)
end
init = function(args)
  math.randomseed(os.time() * 100 + seed)
end
request = function()
  return wrk.format("GET", "/api/v1/items/" .. math.random(FIRST, LAST))
end
"""
_POST = """
wrk.method = "POST"
wrk.body = '{"name": "bench item", "description": "written by bench/app_throughput.py"}'
wrk.headers["Content-Type"] = "application/json"
"""


@dataclass
class Result:
    endpoint: str
    via: str
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    app_non_2xx: int | None = None
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def app_environment(database_url: str, redis_url: str, args: argparse.Namespace) -> dict[str, str]:
    """The tests' clean environment for `python -m app`, with production settings."""
    settings = {
        "APP_ENV": "production",
        "WORKERS": str(args.workers),
        "SECRET_KEY": SECRET,
        "LOG_LEVEL": "INFO",
        "RATE_LIMIT_ENABLED": "true" if args.rate_limit != "off" else "false",
        "SHUTDOWN_DRAIN_SECONDS": "5",
    }
    if args.rate_limit != "off":
        settings["RATE_LIMIT"] = args.rate_limit
    for assignment in args.env:
        name, _, value = assignment.partition("=")
        settings[name] = value
    return app_env(database_url, redis_url, **settings)


def wait_ready(base_url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise BenchError(f"{base_url}/health/ready did not answer 200 within {timeout}s")


def nginx_config(root: Path, upstream: str, args: argparse.Namespace) -> tuple[Path, int]:
    temp = root / "nginx"
    temp.mkdir()
    # nginx started as root runs its workers as nobody, who must write request-body temp files.
    temp.chmod(0o777)
    port = free_port()
    conf = NginxConf(
        upstream=upstream,
        listen_port=port,
        status_listen=f"127.0.0.1:{free_port()}",
        temp_dir=str(temp),
        pid_path=str(temp / "nginx.pid"),
        server_name="127.0.0.1",
        rate_per_second=args.edge_rate,
        burst=args.edge_burst,
        connections_per_client=args.edge_connections,
    )
    path = root / "nginx.conf"
    path.write_text(render_nginx_conf(conf))
    checked = subprocess.run(
        ["nginx", "-t", "-e", "stderr", "-c", str(path)], capture_output=True, text=True
    )
    if checked.returncode != 0:
        raise BenchError(f"nginx -t refused the rendered config:\n{checked.stderr}")
    return path, port


def app_non_2xx(base_url: str) -> int:
    """Non-2xx answers the app itself counted (its /metrics), an independent check of wrk's."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    total = 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            counted = sample.name == "http_requests_total" and sample.labels["route"] != "/metrics"
            if counted and not sample.labels["status"].startswith("2"):
                total += int(sample.value)
    return total


def run_wrk(url: str, script: Path, args: argparse.Namespace, duration: float) -> dict[str, Any]:
    cmd = [
        "wrk", "--latency", "-t", str(args.threads), "-c", str(args.connections),
        "-d", f"{duration:g}s", "--timeout", "5s", "-s", str(script), url,
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    for line in result.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return json.loads(line.removeprefix("WRK_JSON "))
    raise BenchError(f"wrk printed no summary:\n{result.stdout}\n{result.stderr}")


def measure(
    endpoint: str,
    via: str,
    url: str,
    script: Path,
    app_url: str,
    pids: dict[str, int],
    args: argparse.Namespace,
) -> Result:
    run_wrk(url, script, args, duration=args.warmup)
    before = app_non_2xx(app_url)
    cpu_before = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
    profiler = None
    if args.profile is not None:
        slug = "".join(c if c.isalnum() else "-" for c in f"{endpoint}-{via}").strip("-")
        profiler = subprocess.Popen(
            [
                "py-spy", "record", "--format", "raw", "--subprocesses",
                "-d", str(int(args.duration)), "-p", str(args.app_pid),
                "-o", str(args.profile / f"{slug}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
    raw = run_wrk(url, script, args, duration=args.duration)
    if profiler is not None:
        profiler.wait(60)
    cpu_after = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
    after = app_non_2xx(app_url)
    result = Result(
        endpoint=endpoint,
        via=via,
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        non_2xx=raw["status"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
        app_non_2xx=after - before,
        cpu_ms_per_request={
            name: round((cpu_after[name] - cpu_before[name]) * 1000 / max(raw["requests"], 1), 3)
            for name in pids
            if name != "nginx" or via == "nginx"
        },
    )
    print(
        f"{endpoint:<22} {via:<6} {result.rps:9.0f} req/s  p50 {result.p50_ms:7.2f} ms  "
        f"p99 {result.p99_ms:7.2f} ms  non-2xx {result.non_2xx}  "
        f"socket errors {result.socket_errors}  app non-2xx {result.app_non_2xx}  "
        "CPU ms/req "
        + " ".join(f"{name} {ms:.2f}" for name, ms in result.cpu_ms_per_request.items()),
        flush=True,
    )
    return result


_ENDPOINTS = ("live", "read", "read-miss", "list", "write")


class _Sink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that accepts every export (an empty protobuf answer is a valid
    ExportTraceServiceResponse) and counts them."""

    exports = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).exports += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_otlp_sink() -> tuple[http.server.ThreadingHTTPServer, str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def seed_rows(database_url: str, count: int) -> tuple[int, int]:
    """`count` items inserted by PostgreSQL itself (through the API it would take minutes)."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO items (name) SELECT 'bench ' || n FROM generate_series(1, %s) AS n",
            (count,),
        )
        row = conn.execute(
            "SELECT min(id), max(id) FROM items WHERE name LIKE 'bench %'"
        ).fetchone()
        conn.execute("ANALYZE items")
    return int(row[0]), int(row[1])


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("bench.app_throughput", __doc__)
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="app worker processes")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="direct/nginx pairs per endpoint, run alternately; the ratio reported is their median",
    )
    parser.add_argument(
        "--rate-limit",
        default="1000000/minute",
        help="the app's RATE_LIMIT (enabled, so its Redis round trip is measured) or 'off'",
    )
    parser.add_argument("--edge-rate", type=int, default=1_000_000, help="nginx rate r/s")
    parser.add_argument(
        "--edge-connections", type=int, default=65_535, help="nginx requests in progress"
    )
    parser.add_argument("--edge-burst", type=int, default=100_000, help="nginx burst")
    parser.add_argument(
        "--only", default="", help=f"comma-separated endpoints ({','.join(_ENDPOINTS)})"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra app setting, e.g. --env DB_POOL_SIZE=20 (repeatable)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="record measured runs with py-spy (collapsed stacks) into this directory; "
        "with --rounds, the last round of each endpoint and path is kept",
    )
    parser.add_argument(
        "--redis-down", action="store_true", help="stop Redis before measuring (after seeding)"
    )
    parser.add_argument(
        "--otlp-sink", action="store_true", help="trace every request to a loopback OTLP sink"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument("--json", type=Path, default=None, help="also write figures here")
    args = parser.parse_args(argv)
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: apt-get install {tool}", file=sys.stderr)
            return 2

    info = print_machine()
    root = new_temp_root("safeguard-bench-")
    # Its own temp root: the postgres user must reach it, and `root` is private to us.
    postgres = PostgresServer(root=new_temp_root("safeguard-bench-pg-"))
    redis = RedisServer(root=root / "redis")
    # Output goes to files: a pipe nobody reads would fill up and stall the app mid-run.
    app_server, edge_server = ServerProcess(root, "app"), ServerProcess(root, "nginx")
    results: list[Result] = []
    sink = None
    if args.otlp_sink:
        sink, endpoint = start_otlp_sink()
        args.env.append(f"OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}")
    try:
        postgres.init()
        postgres.start()
        redis.start()
        env = app_environment(postgres.create_database("bench"), redis.url(0), args)
        app = app_server.spawn([sys.executable, "-m", "app"], env=env, cwd=REPO_ROOT)
        args.app_pid = app.pid
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
        app_url = f"http://127.0.0.1:{env['PORT']}"
        wait_ready(app_url)

        conf, edge_port = nginx_config(root, f"127.0.0.1:{env['PORT']}", args)
        edge = edge_server.spawn(
            ["nginx", "-e", "stderr", "-c", str(conf), "-g", "daemon off;"], cwd=REPO_ROOT
        )
        wait_for_port(edge_port)
        edge_url = f"http://127.0.0.1:{edge_port}"
        postmaster = int((postgres.data_dir / "postmaster.pid").read_text().split()[0])
        assert redis.process is not None
        pids = {
            "app": app.pid, "postgres": postmaster, "redis": redis.process.pid, "nginx": edge.pid
        }  # fmt: skip

        with httpx.Client(base_url=app_url, timeout=10) as client:
            seeded = [
                client.post("/api/v1/items", json={"name": f"seed {i}"}).json()["id"]
                for i in range(100)
            ]
        get_script, post_script = root / "get.lua", root / "post.lua"
        get_script.write_text(_DONE)
        post_script.write_text(_POST + _DONE)
        miss_script = root / "miss.lua"
        wanted = [name for name in args.only.split(",") if name] or list(_ENDPOINTS)
        if "read-miss" in wanted:
            first, last = seed_rows(env["DATABASE_URL"], MISS_ITEMS)
            random_item = _RANDOM_ITEM.replace("FIRST", str(first)).replace("LAST", str(last))
            miss_script.write_text(random_item + _DONE)
        if args.redis_down:
            redis.stop()

        endpoints = {
            "live": ("GET /health/live", "/health/live", get_script),
            "read": ("GET /api/v1/items/{id}", f"/api/v1/items/{seeded[50]}", get_script),
            "read-miss": ("GET /api/v1/items/{random id}", "/", miss_script),
            "list": ("GET /api/v1/items", "/api/v1/items?limit=20", get_script),
            # Writes last: they grow the table the list counts.
            "write": ("POST /api/v1/items", "/api/v1/items", post_script),
        }
        assert list(endpoints) == list(_ENDPOINTS)
        print(
            f"app: {args.workers} worker(s), RATE_LIMIT={args.rate_limit}, "
            f"Redis {'down' if args.redis_down else 'up'}, settings {args.env}; nginx: rendered "
            f"config, rate {args.edge_rate}r/s burst {args.edge_burst}; wrk -t{args.threads} "
            f"-c{args.connections} -d{args.duration:g}s after {args.warmup:g}s warm-up",
            flush=True,
        )
        for name in wanted:
            label, path, script = endpoints[name]
            vias = [("direct", app_url)] + ([("nginx", edge_url)] if name != "live" else [])
            for _ in range(args.rounds):
                for via, base in vias:
                    results.append(measure(label, via, base + path, script, app_url, pids, args))
    finally:
        edge_server.stop(30)
        app_server.stop(30)
        if sink is not None:
            print(f"OTLP sink received {_Sink.exports} export(s)")
            sink.shutdown()
        redis.stop()
        postgres.stop()
        shutil.rmtree(postgres.root, ignore_errors=True)
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    print("\nnginx / direct throughput (each round, then the median):")
    runs: dict[tuple[str, str], list[Result]] = {}
    for result in results:
        runs.setdefault((result.endpoint, result.via), []).append(result)
    rounds = {
        endpoint: [e.rps / d.rps for d, e in zip(direct, runs[endpoint, "nginx"], strict=True)]
        for (endpoint, via), direct in runs.items()
        if via == "direct" and (endpoint, "nginx") in runs
    }
    ratios = {endpoint: statistics.median(values) for endpoint, values in rounds.items()}
    for endpoint, values in rounds.items():
        each = " ".join(f"{value:.2f}" for value in values)
        print(f"  {endpoint:<22} {each}  median {ratios[endpoint]:.2f}")
    # wrk's own count is what clients saw. The app's count also holds the requests wrk
    # abandoned when its time ran out (the app logs a body read cut short by the client's
    # disconnect as 400), at most one per connection.
    failures = [
        r
        for r in results
        if r.non_2xx or r.socket_errors or (r.app_non_2xx or 0) > args.connections
    ]
    write_json(
        args.json,
        {
            "machine": info,
            "args": {k: str(v) for k, v in vars(args).items()},
            "results": [{**vars(r), "rps": r.rps} for r in results],
            "nginx_over_direct": ratios,
            "nginx_over_direct_rounds": rounds,
        },
    )
    if failures:
        print(
            "\nFAILED: non-2xx answers or socket errors in "
            + ", ".join(f"{r.endpoint} via {r.via}" for r in failures),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
