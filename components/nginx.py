"""nginx at the edge: the only workload reachable from outside. It serves the public API
(`PUBLIC_PREFIX`) and its own health check and nothing else, only for the configured host names,
proxying to the app with rate and connection limits, security headers, request ids, the client
address it decided itself, JSON error bodies and TLS when the stack has a certificate; an
nginx-prometheus-exporter sidecar reads stub_status.

`nginx_conf` (the component's args and the app's address to `NginxConf`) and
`render_nginx_conf` (`NginxConf` to text) are pure functions, so the exact configuration a stack
deploys can be checked with a real `nginx -t` and live traffic, with ports and paths pointed at a
test directory.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import jinja2
import pulumi

from components.common import EXPORTER_COMPUTE, FILES, TMP, TMP_MOUNT
from spec.addresses import host_name_problem, network_problem
from spec.images import is_pinned_image
from spec.platform import Platform
from spec.probes import HttpGet, Probe, Probes
from spec.service import Compute, Container, Ingress, Port, Publish, ServiceSpec
from spec.volumes import ExistingSecretVolume, FilesVolume, Mount

LISTEN_PORT = 8080
TLS_PORT = 8443
STATUS_PORT = 8081
EXPORTER_PORT = 9113
HEALTH_PATH = "/nginx-health"
UID = 101
"""The `nginx` user of the nginx-unprivileged image."""
DOCKER_PUBLISH_ADDRESS = "127.0.0.1"
"""The host address Docker publishes the public port on."""
CONFIG_DIR = "/etc/nginx/safeguard"
TLS_DIR = "/etc/nginx/tls"

PUBLIC_PREFIX = "/api/"
"""The only app paths the edge routes; every other path gets nginx's own JSON 404."""
CORS_EXPOSE_HEADERS = (
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
)
"""The app's Access-Control-Expose-Headers (app/security.py `cors_options`), which nginx's own
error answers repeat so a browser can read them; a test compares the two live."""

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")
_SIZE = re.compile(r"^\d+[kKmM]?$")
_TEMPLATE = jinja2.Environment(
    loader=jinja2.FileSystemLoader(FILES / "nginx"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)
# Origins go into case-sensitive regular expressions: nginx compares plain map keys without
# regard to case, the app's CORS middleware does not.
_TEMPLATE.filters["regex"] = re.escape


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    """Certificate and key paths inside the nginx container."""

    certificate: str
    key: str


@dataclass(frozen=True, kw_only=True)
class NginxConf:
    """Every input of nginx.conf."""

    upstream: str
    """host:port of the app."""
    bind: str | None = None
    """Address the public ports bind to; None binds every address (what a container wants)."""
    listen_port: int = LISTEN_PORT
    """Plain HTTP port (with TLS, it only redirects and answers the health check)."""
    tls_port: int = TLS_PORT
    """HTTPS port, used when `tls` is set."""
    status_listen: str = f"127.0.0.1:{STATUS_PORT}"
    """Address of the stub_status server; loopback, as only the sidecar reads it."""
    temp_dir: str = "/tmp"
    """Writable directory for request bodies and proxy buffers."""
    pid_path: str = "/tmp/nginx.pid"
    """Writable pid file path."""
    server_name: str
    """The host name clients use: the HTTPS redirect goes there, and a request naming any host
    but this one or an alias is refused (plain HTTP: 421; TLS: the handshake)."""
    server_aliases: tuple[str, ...] = ()
    """More host names served (never redirected to)."""
    trusted_proxies: tuple[str, ...] = ()
    """Networks of the load balancers in front of nginx: only from these peers does nginx take
    the client address from X-Forwarded-For. Empty: the connecting address is the client's."""
    allowed_origins: tuple[str, ...] = ()
    """CORS allowlist, for nginx's own answers (the app answers CORS for everything it serves)."""
    rate_per_second: int = 20
    """Sustained requests per second per client address."""
    burst: int = 40
    """Requests above the rate a client may send at once before getting 429."""
    connections_per_client: int = 20
    """Requests one client address may have in progress at once before getting 429."""
    client_max_body_size: str = "1m"
    """Largest accepted request body."""
    connect_timeout: str = "5s"
    """Time to connect to the app."""
    read_timeout: str = "30s"
    """Time the app has to answer."""
    tls: TlsFiles | None = None
    """Serve HTTPS with these files."""
    hsts: bool = False
    """Send Strict-Transport-Security: only when clients reach the service over TLS."""

    def __post_init__(self) -> None:
        problems = [
            f"origin {o!r} is not scheme://host[:port]"
            for o in self.allowed_origins
            if not _ORIGIN.match(o)
        ]
        for name in (self.server_name, *self.server_aliases):
            if (problem := host_name_problem(name)) is not None:
                problems.append(f"server name {problem}")
        problems += [p for n in self.trusted_proxies if (p := network_problem(n)) is not None]
        if not _SIZE.match(self.client_max_body_size):
            problems.append(f"client_max_body_size {self.client_max_body_size!r} is not a size")
        if self.rate_per_second < 1 or self.burst < 0:
            problems.append("rate_per_second must be positive and burst not negative")
        if not 1 <= self.connections_per_client <= 65535:
            problems.append("connections_per_client must be 1 to 65535 (nginx's bound)")
        if problems:
            raise ValueError("NginxConf: " + "; ".join(problems))


def render_nginx_conf(conf: NginxConf) -> str:
    """nginx.conf for `conf`; the same input always gives the same text."""
    values = {name: getattr(conf, name) for name in conf.__dataclass_fields__}
    return _TEMPLATE.get_template("nginx.conf.j2").render(
        values, public_prefix=PUBLIC_PREFIX, cors_expose_headers=", ".join(CORS_EXPOSE_HEADERS)
    )


@dataclass(frozen=True, kw_only=True)
class NginxArgs:
    """Settings of the edge proxy."""

    platform: Platform
    """Back end that turns the description into resources."""
    upstream: pulumi.Input[str]
    """host:port of the app: the AppService's `address`."""
    server_name: str
    """Public host name; requests naming another host are refused."""
    trusted_proxies: tuple[str, ...] = ()
    """Networks of the load balancers in front of nginx whose X-Forwarded-For it believes."""
    allowed_origins: tuple[str, ...] = ()
    """CORS allowlist."""
    rate_per_second: int = 20
    """Per-client sustained rate."""
    burst: int = 40
    """Per-client burst."""
    connections_per_client: int = 20
    """Per-client requests in progress at once."""
    client_max_body_size: str = "1m"
    """Largest accepted request body."""
    tls_secret: str | None = None
    """Kubernetes TLS Secret; terminated by nginx unless `tls_at_ingress`."""
    tls_at_ingress: bool = False
    """TLS ends at the Ingress in front of nginx (nginx still sends HSTS)."""
    replicas: int = 1
    """Pods; with 2 or more a PodDisruptionBudget keeps one up."""
    public_port: int = 8080
    """Docker: port published on 127.0.0.1."""
    scrapers: tuple[str, ...] = ("prometheus",)
    """Services allowed to read the exporter's metrics."""
    image: str
    """nginx built to run as a non-root user (the stack's `images.nginx`)."""
    exporter_image: str
    """Sidecar translating stub_status into metrics (a scratch image: no shell, no wget)."""
    after: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """Resources to create first: the app. nginx resolves the upstream's name when it starts
    and exits if it cannot (on Docker the name exists only once the app's container runs)."""

    def __post_init__(self) -> None:
        problems = [
            f"image {image!r} must be pinned"
            for image in (self.image, self.exporter_image)
            if not is_pinned_image(image)
        ]
        if self.replicas < 1:
            problems.append("replicas must be at least 1")
        if (problem := host_name_problem(self.server_name)) is not None:
            problems.append(f"server_name {problem}")
        problems += [p for n in self.trusted_proxies if (p := network_problem(n)) is not None]
        if problems:
            raise ValueError("NginxArgs: " + "; ".join(problems))

    @property
    def tls_at_nginx(self) -> bool:
        return self.tls_secret is not None and not self.tls_at_ingress


class Nginx(pulumi.ComponentResource):
    """The public entry point."""

    url: pulumi.Output[str]
    """Public URL of the service."""
    metrics_target: pulumi.Output[str]
    """host:port of the exporter, for Prometheus."""

    def __init__(self, name: str, args: NginxArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("safeguard:components:Nginx", name, None, opts)
        # Checked now, before any resource exists; the upstream is an output of the app, so
        # the text is rendered once it is known.
        conf = nginx_conf(args, upstream="")
        config = pulumi.Output.from_input(args.upstream).apply(
            lambda upstream: render_nginx_conf(dataclasses.replace(conf, upstream=upstream))
        )
        deployed = args.platform.deploy(
            _service(name, args, config), parent=self, depends_on=args.after
        )

        if args.platform.name == "docker":
            url = f"http://{DOCKER_PUBLISH_ADDRESS}:{args.public_port}"
        else:
            url = f"{'https' if args.tls_secret else 'http'}://{args.server_name}"
        self.url = pulumi.Output.from_input(url)
        self.metrics_target = pulumi.Output.from_input(f"{deployed.host}:{EXPORTER_PORT}")
        self.register_outputs({"url": self.url, "metrics_target": self.metrics_target})


def nginx_conf(args: NginxArgs, upstream: str) -> NginxConf:
    """The NginxConf the component deploys for `args`, with `upstream` for the app's address
    (`args.upstream` once it is known)."""
    # Docker publishes the port on 127.0.0.1 only, so that address names the service too.
    docker_loopback = args.platform.name == "docker" and args.server_name != DOCKER_PUBLISH_ADDRESS
    return NginxConf(
        upstream=upstream,
        server_name=args.server_name,
        server_aliases=(DOCKER_PUBLISH_ADDRESS,) if docker_loopback else (),
        trusted_proxies=args.trusted_proxies,
        allowed_origins=args.allowed_origins,
        rate_per_second=args.rate_per_second,
        burst=args.burst,
        connections_per_client=args.connections_per_client,
        client_max_body_size=args.client_max_body_size,
        tls=TlsFiles(certificate=f"{TLS_DIR}/tls.crt", key=f"{TLS_DIR}/tls.key")
        if args.tls_at_nginx
        else None,
        hsts=args.tls_secret is not None,
    )


def _service(name: str, args: NginxArgs, config: pulumi.Input[str]) -> ServiceSpec:
    health = HttpGet(path=HEALTH_PATH, port=LISTEN_PORT)
    mounts = [Mount(volume="config", path=CONFIG_DIR, read_only=True), TMP_MOUNT]
    volumes = [FilesVolume(name="config", files={"nginx.conf": config}), TMP]
    ports = [Port(name="http", port=LISTEN_PORT)]
    service_ports = [Port(name="http", port=80, target=LISTEN_PORT)]
    if args.tls_at_nginx:
        assert args.tls_secret is not None
        mounts.append(Mount(volume="tls", path=TLS_DIR, read_only=True))
        volumes.append(ExistingSecretVolume(name="tls", secret_name=args.tls_secret))
        ports.append(Port(name="https", port=TLS_PORT))
        service_ports.append(Port(name="https", port=443, target=TLS_PORT))
    server = Container(
        name="nginx",
        image=args.image,
        uid=UID,
        gid=UID,
        compute=Compute(
            cpu_request="50m", memory_request="64Mi", cpu_limit="500m", memory_limit="128Mi"
        ),
        command=("nginx", "-c", f"{CONFIG_DIR}/nginx.conf", "-g", "daemon off;"),
        ports=tuple(ports),
        probes=Probes(
            liveness=Probe(check=health, period_seconds=10),
            readiness=Probe(check=health, period_seconds=5),
        ),
        mounts=tuple(mounts),
    )
    exporter = Container(
        name="exporter",
        image=args.exporter_image,
        uid=65534,
        gid=65534,
        compute=EXPORTER_COMPUTE,
        args=(f"--nginx.scrape-uri=http://127.0.0.1:{STATUS_PORT}/stub_status",),
        ports=(Port(name="metrics", port=EXPORTER_PORT),),
        probes=Probes.same(Probe(check=HttpGet(path="/metrics", port=EXPORTER_PORT))),
        http_client=None,
        no_docker_healthcheck=(
            "nginx-prometheus-exporter is a scratch image with no shell or HTTP client to run "
            "a check inside the container; Prometheus scrapes it, and its TargetDown alert "
            "fires when the exporter stops answering"
        ),
    )
    public_ports = tuple(p.target or p.port for p in service_ports)
    return ServiceSpec(
        name=name,
        containers=(server, exporter),
        replicas=args.replicas,
        volumes=tuple(volumes),
        service_ports=(*service_ports, Port(name="metrics", port=EXPORTER_PORT)),
        ingress=(
            Ingress(from_anywhere=True, ports=public_ports),
            Ingress(from_services=args.scrapers, ports=(EXPORTER_PORT,)),
        ),
        min_available=1 if args.replicas > 1 else None,
        public=True,
        publish=(Publish(port=LISTEN_PORT, host_port=args.public_port),),
    )
