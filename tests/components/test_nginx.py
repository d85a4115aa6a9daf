"""The nginx.conf that components/nginx.py renders, checked by the real nginx: `nginx -t`, then
live traffic through nginx to the real app (`python -m app` on real PostgreSQL and Redis).

Only what differs on a test machine is changed (tests/support/servers.py `nginx_test_conf`):
loopback ports, pid and temp paths. Limits and timeouts a test needs small are NginxConf fields.
"""

from __future__ import annotations

import re
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.middleware import accept_request_id
from app.security import HSTS, security_headers
from app.settings import Settings
from components.nginx import HEALTH_PATH, NginxConf, TlsFiles, render_nginx_conf
from tests.support.app_process import TEST_SECRET, app_env
from tests.support.servers import (
    LIVE_APP_ORIGINS,
    LiveApp,
    NginxServer,
    PostgresServer,
    free_port,
    new_temp_root,
    nginx_check,
    nginx_test_conf,
    self_signed_certificate,
)

ITEMS = "/api/v1/items"
TLS_HOST = "edge.test"
"""The name the TLS tests serve: nginx refuses a handshake without a name it has a certificate
for, and clients send no name (SNI) when they connect to an IP address."""
NGINX_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def edge(live_app: LiveApp, start_nginx) -> NginxServer:
    """nginx in front of the live app, limits high enough not to interfere, small body limit."""
    return start_nginx(
        upstream=f"127.0.0.1:{live_app.port}",
        allowed_origins=LIVE_APP_ORIGINS,
        rate_per_second=1000,
        burst=1000,
        client_max_body_size="1k",
    )


@pytest.fixture(scope="module")
def client(edge: NginxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{edge.port}", timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def certificate(openssl: str) -> Iterator[TlsFiles]:
    """A self-signed certificate for TLS_HOST, made with the openssl CLI."""
    root = new_temp_root("safeguard-tls-")
    yield self_signed_certificate(root, TLS_HOST)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.usefixtures("nginx")
def test_nginx_accepts_the_rendered_config(tls: bool, certificate: TlsFiles, tmp_path: Path):
    conf = nginx_test_conf(
        tmp_path, free_port(), upstream="127.0.0.1:8000", tls=certificate if tls else None
    )
    config = tmp_path / "nginx.conf"
    config.write_text(render_nginx_conf(conf))
    result = nginx_check(config)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.usefixtures("nginx")
def test_nginx_rejects_a_config_it_cannot_load(tmp_path: Path):
    # The check above is only worth something if nginx -t can fail on this config.
    conf = nginx_test_conf(tmp_path, free_port(), upstream="127.0.0.1:8000")
    config = tmp_path / "nginx.conf"
    config.write_text(render_nginx_conf(conf).replace("limit_req_status 429;", "limit_req_status;"))
    assert nginx_check(config).returncode != 0


def test_security_headers_are_the_apps_and_sent_once(client: httpx.Client, live_app: LiveApp):
    settings = Settings(
        database_url="postgresql://u:p@localhost/db",
        redis_url="redis://localhost",
        app_env="production",
        secret_key=TEST_SECRET,
    )
    expected = {name.decode(): value.decode() for name, value in security_headers(settings)}
    direct = httpx.get(f"{live_app.base_url}{ITEMS}")
    assert direct.headers["strict-transport-security"] == HSTS  # the app sends it ...
    answers = ((ITEMS, 200), (f"{ITEMS}/999999", 404), ("/no-such-route", 404), ("/metrics", 404))
    for path, status in answers:
        response = client.get(path)
        assert response.status_code == status, path
        for name, value in expected.items():
            if name == "strict-transport-security":
                # ... and a plain-HTTP edge must not pin browsers to HTTPS.
                assert name not in response.headers, path
            else:
                assert response.headers.get_list(name) == [value], (path, name)
        assert response.headers["permissions-policy"]
        assert len(response.headers.get_list("x-request-id")) == 1, path
        assert response.headers.get_list("server") == ["nginx"], path  # no version, no uvicorn


@pytest.mark.parametrize(
    "sent",
    [None, "client-id_1.2", "x" * 64, "x" * 65, 'quote"in-id', "space in id"],
    ids=["absent", "valid", "longest", "too-long", "quote", "space"],
)
def test_one_request_id_from_client_through_nginx_to_the_app_log(
    sent: str | None, client: httpx.Client, edge: NginxServer, live_app: LiveApp
):
    headers = {"X-Request-ID": sent} if sent is not None else {}
    response = client.get(ITEMS, headers=headers)
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    if sent is not None and accept_request_id(sent) == sent:
        assert request_id == sent
    else:
        # Whatever the app would replace, nginx replaces first, with its own $request_id.
        assert NGINX_ID.match(request_id), request_id
    line = live_app.access_line(request_id)
    assert line["path"] == ITEMS and line["status"] == 200
    assert edge.access_line(request_id)["path"] == ITEMS


def test_nginx_answers_its_own_errors_in_json_with_the_request_id(client: httpx.Client):
    response = client.post(ITEMS, content=b"x" * 2048, headers={"Content-Type": "text/plain"})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "payload_too_large"
    assert response.json()["request_id"] == response.headers["x-request-id"]
    small = client.post(ITEMS, json={"name": "fits"})
    assert small.status_code == 201, small.text


def test_only_allowlisted_origins_get_cors_headers(client: httpx.Client, live_app: LiveApp):
    allowed = LIVE_APP_ORIGINS[0]
    response = client.get(ITEMS, headers={"Origin": allowed})
    assert response.headers.get_list("access-control-allow-origin") == [allowed]
    assert "Origin" in response.headers["vary"]
    asked = {"Origin": allowed, "Access-Control-Request-Method": "POST"}
    preflight = client.options(ITEMS, headers=asked)
    direct = httpx.options(f"{live_app.base_url}{ITEMS}", headers=asked)
    assert preflight.status_code == direct.status_code == 200  # the app's answer, not nginx's
    assert preflight.headers["access-control-allow-origin"] == allowed
    assert "POST" in preflight.headers["access-control-allow-methods"]

    for origin in ("https://evil.example.com", f"{allowed}.evil.example.com", "null"):
        response = client.get(ITEMS, headers={"Origin": origin})
        assert response.status_code == 200
        assert not [h for h in response.headers if h.startswith("access-control-")], origin
        preflight = client.options(
            ITEMS, headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status_code == 400  # the app's refused-preflight envelope
        assert preflight.json()["error_code"] == "cors_origin_refused"
        assert not [h for h in preflight.headers if h.startswith("access-control-")], origin


def test_health_answers_and_metrics_stay_internal(client: httpx.Client, live_app: LiveApp):
    health = client.get(HEALTH_PATH)
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert httpx.get(f"{live_app.base_url}/metrics").status_code == 200
    hidden = client.get("/metrics")
    assert hidden.status_code == 404 and hidden.json()["error"] == "not_found"


def test_stub_status_answers_on_loopback_for_the_exporter(live_app: LiveApp, start_nginx):
    status_port = free_port()
    start_nginx(upstream=f"127.0.0.1:{live_app.port}", status_listen=f"127.0.0.1:{status_port}")
    body = httpx.get(f"http://127.0.0.1:{status_port}/stub_status").text
    # The lines nginx-prometheus-exporter parses into nginx_connections_* and nginx_http_requests.
    assert re.search(r"^Active connections: \d+", body, re.M), body
    assert re.search(r"^Reading: \d+ Writing: \d+ Waiting: \d+", body, re.M), body
    assert httpx.get(f"http://127.0.0.1:{status_port}/").status_code == 404


def test_past_the_burst_clients_get_429_in_json_and_probes_still_pass(
    live_app: LiveApp, start_nginx
):
    server = start_nginx(upstream=f"127.0.0.1:{live_app.port}", rate_per_second=1, burst=3)
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as c:
        responses = [c.get(ITEMS) for _ in range(12)]
        statuses = [r.status_code for r in responses]
        assert set(statuses) == {200, 429}, statuses
        # burst 3 plus the one the rate allows; a refill during the loop may add one more.
        assert 4 <= statuses.count(200) <= 5, statuses
        limited = next(r for r in responses if r.status_code == 429)
        assert limited.json()["error"] == "rate_limited"
        assert limited.json()["request_id"] == limited.headers["x-request-id"]
        assert limited.headers["x-frame-options"] == "DENY"
        assert c.get(HEALTH_PATH).status_code == 200  # probes are never rate limited


@pytest.fixture
def silent_upstream() -> Iterator[int]:
    """A TCP server that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def test_an_upstream_that_never_answers_gets_504_in_json(silent_upstream: int, start_nginx):
    server = start_nginx(upstream=f"127.0.0.1:{silent_upstream}", read_timeout="1s")
    started = time.monotonic()
    response = httpx.get(f"http://127.0.0.1:{server.port}{ITEMS}", timeout=10)
    assert response.status_code == 504
    assert 0.9 <= time.monotonic() - started < 5
    assert response.json()["error"] == "gateway_timeout"
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_the_apps_own_503_passes_and_a_stopped_app_gives_502_in_json(
    postgres_server: PostgresServer, start_nginx
):
    # An app whose Redis is unreachable and whose limiter fails closed: it answers 503 in its
    # envelope.
    database = postgres_server.create_database("edge_down")
    root = new_temp_root("safeguard-app-down-")
    env = app_env(
        database,
        f"redis://127.0.0.1:{free_port()}/0",
        APP_ENV="production",
        RATE_LIMIT_FAIL_OPEN="false",
    )
    app = LiveApp(root=root, env=env, ready_path="/health/live")
    try:
        app.start()
        server = start_nginx(upstream=f"127.0.0.1:{app.port}")
        url = f"http://127.0.0.1:{server.port}{ITEMS}"
        unready = httpx.get(url, timeout=10)
        assert unready.status_code == 503
        assert unready.json()["error_code"] == "rate_limiter_unavailable"  # the app's body
        assert unready.headers["x-frame-options"] == "DENY"
        app.stop()
        gone = httpx.get(url, timeout=10)
        assert gone.status_code == 502
        assert gone.json()["error"] == "bad_gateway"
        assert gone.json()["request_id"] == gone.headers["x-request-id"]
    finally:
        app.stop()
        postgres_server.drop_database("edge_down")
        shutil.rmtree(root, ignore_errors=True)


def test_tls_serves_https_with_hsts_and_sends_plain_http_there(
    certificate: TlsFiles, live_app: LiveApp, start_nginx
):
    tls_port = free_port()
    server = start_nginx(
        upstream=f"127.0.0.1:{live_app.port}",
        server_name=TLS_HOST,
        tls=certificate,
        tls_port=tls_port,
        hsts=True,
    )
    named = {"headers": {"Host": TLS_HOST}, "extensions": {"sni_hostname": TLS_HOST}}
    context = ssl.create_default_context(cafile=certificate.certificate)
    with httpx.Client(verify=context, timeout=10) as trusting:
        response = trusting.get(f"https://127.0.0.1:{tls_port}{ITEMS}", **named)
    assert response.status_code == 200
    assert response.headers.get_list("strict-transport-security") == [HSTS]
    assert response.headers["x-frame-options"] == "DENY"
    with httpx.Client(timeout=10) as default, pytest.raises(httpx.ConnectError):
        default.get(f"https://127.0.0.1:{tls_port}{ITEMS}", **named)  # not a trusted cert

    plain_url = f"http://127.0.0.1:{server.port}"
    plain = httpx.get(f"{plain_url}{ITEMS}?limit=1", headers={"Host": TLS_HOST}, timeout=10)
    assert plain.status_code == 308
    assert plain.headers["location"] == f"https://{TLS_HOST}{ITEMS}?limit=1"
    assert httpx.get(f"{plain_url}{HEALTH_PATH}").status_code == 200


@pytest.mark.usefixtures("nginx")
def test_tls_conf_needs_the_certificate_files(tmp_path: Path):
    missing = TlsFiles(certificate=str(tmp_path / "none.crt"), key=str(tmp_path / "none.key"))
    config = tmp_path / "nginx.conf"
    config.write_text(
        render_nginx_conf(
            nginx_test_conf(tmp_path, free_port(), upstream="127.0.0.1:8000", tls=missing)
        )
    )
    result = nginx_check(config)
    assert result.returncode != 0 and "none.crt" in result.stderr


def test_conf_refuses_values_nginx_would_misread() -> None:
    with pytest.raises(ValueError, match="client_max_body_size"):
        NginxConf(upstream="app:8000", server_name="a.test", client_max_body_size="1 gigabyte")
    # "_" was nginx's catch-all name; with unknown hosts refused it would serve no one, and a
    # name with a space or ";" would end the directive early.
    for name in ("_", "*.example.com", "a.test; return 200", ""):
        with pytest.raises(ValueError, match="not a host name"):
            NginxConf(upstream="app:8000", server_name=name)
    with pytest.raises(ValueError, match="not an IP network"):
        NginxConf(upstream="app:8000", server_name="a.test", trusted_proxies=("10.0.0.1/8",))
