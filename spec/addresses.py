"""Host names, origins, URLs, IP networks and Kubernetes object names: how a service is named,
who calls it and from where, checked the same way for components and stack settings."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
# RFC 1123 names as Kubernetes validates object names (apimachinery's IsDNS1123Label and
# IsDNS1123Subdomain): lower case only.
_DNS_LABEL = r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
DNS_LABEL_PATTERN = rf"^{_DNS_LABEL}$"
DNS_SUBDOMAIN_PATTERN = rf"^(?=.{{1,253}}$){_DNS_LABEL}(?:\.{_DNS_LABEL})*$"


def host_name_problem(name: str) -> str | None:
    """Why `name` cannot be the host name a service is reached by (None if it can): a DNS name
    or an IPv4 address, never a wildcard or nginx's catch-all "_"."""
    if _HOST_NAME.match(name):
        return None
    return f"{name!r} is not a host name (letters, digits, '-' and '.'; no '_' or '*')"


def network_problem(cidr: str) -> str | None:
    """Why `cidr` is not an IP network such as 10.0.0.0/8 or 2001:db8::/32 (None if it is)."""
    try:
        ipaddress.ip_network(cidr)
    except ValueError as error:
        return f"{cidr!r} is not an IP network ({error})"
    return None


def dns_label_problem(name: str) -> str | None:
    """Why `name` cannot name a namespace (None if it can): at most 63 lower-case letters,
    digits and '-', starting and ending with a letter or digit."""
    if re.match(DNS_LABEL_PATTERN, name):
        return None
    return (
        f"{name!r} is not a DNS label (at most 63 lower-case letters, digits and '-', starting "
        "and ending with a letter or digit)"
    )


def dns_subdomain_problem(name: str) -> str | None:
    """Why `name` cannot name a Secret, StorageClass or IngressClass (None if it can)."""
    if re.match(DNS_SUBDOMAIN_PATTERN, name):
        return None
    return f"{name!r} is not a Kubernetes object name (lower-case DNS labels joined by '.')"


def origin_problem(origin: str) -> str | None:
    """Why `origin` is not a browser origin the app accepts, scheme://host[:port] with no path
    (None if it is)."""
    shape = "an origin is http(s)://host[:port], with no path, query or trailing '/'"
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return f"{origin!r} is not an origin: {shape}"
    if (
        parts.scheme not in ("http", "https")
        or parts.hostname is None
        or host_name_problem(parts.hostname) is not None
        or parts.username is not None
        or port == 0
        or origin != f"{parts.scheme}://{parts.netloc}"
    ):
        return f"{origin!r} is not an origin: {shape}"
    return None


def url_problem(url: str) -> str | None:
    """Why `url` is not an http(s) URL with a host (None if it is); it never repeats the URL,
    which may carry a token."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port that is not a number raises ValueError
    except ValueError:
        return "must be an http(s) URL such as https://host/path"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL such as https://host/path"
    return None
