"""Host names and IP networks: how a service is named and where its callers connect from, checked
the same way for components and stack settings."""

from __future__ import annotations

import ipaddress
import re

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


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
