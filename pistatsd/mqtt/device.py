"""Who this machine is for Home Assistant: a stable id, a model, a maker and a dashboard link.

Read once at start-up (a few tiny files, before the reactor runs).  The id
comes from C{/etc/machine-id}, which survives renames and re-addressing;
a machine without one falls back on its hostname.
"""

from __future__ import annotations

import hashlib
import platform
import socket
from collections.abc import Callable, Sequence

from pistatsd import __version__
from pistatsd.mqtt.discovery import Device

MACHINE_ID = "/etc/machine-id"
PI_MODEL = "/proc/device-tree/model"
DMI = "/sys/class/dmi/id"


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            text = f.read(4096).replace(b"\x00", b"").decode("utf-8", "replace").strip()
    except OSError:
        return None
    return text or None


def node_id(machine_id: str | None, hostname: str) -> str:
    """C{pistatsd_<12 hex digits>}: from the machine id, else from the hostname."""
    source = machine_id or f"host:{hostname}"
    return "pistatsd_" + hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]


def dashboard_url(ports: Sequence[str], tls: Sequence[str], hostname: str) -> str | None:
    """The dashboard's address from the first TLS, else plain, TCP endpoint; None for others.

    C{tcp:8888}, C{tcp:port=8888:interface=...}, C{ssl:8443:...}: the port is
    the first positional argument or C{port=}; an endpoint bound to a
    loopback interface is no use to another machine, nor is C{unix:}.
    """
    for scheme, endpoints in (("https", tls), ("http", ports)):
        for endpoint in endpoints:
            kind, _, rest = endpoint.partition(":")
            if kind not in ("tcp", "ssl", "tcp6"):
                continue
            port = None
            interface = ""
            for i, arg in enumerate(rest.split(":")):
                key, eq, value = arg.partition("=")
                if not eq and i == 0:
                    port = key
                elif key == "port":
                    port = value
                elif key == "interface":
                    interface = value
            if port is None or not port.isdigit() or int(port) == 0:
                continue
            if interface.startswith("127.") or interface in ("::1", "localhost"):
                continue
            return f"{scheme}://{hostname}:{int(port)}/"
    return None


def this_device(
    *,
    ports: Sequence[str],
    tls: Sequence[str],
    dashboard: str | None,
    hostname: Callable[[], str] = socket.gethostname,
    read: Callable[[str], str | None] = _read,
) -> Device:
    """The device every entity of this machine belongs to.

    @param dashboard: C{--mqtt-dashboard-url}, else derived from the endpoints.
    @param read: reads a small file's text or None (injected by tests).
    """
    name = hostname()
    model = read(PI_MODEL)
    if model is not None and model.startswith("Raspberry Pi"):
        manufacturer = "Raspberry Pi Ltd"
    else:
        product = read(f"{DMI}/product_name")
        model = product or f"{platform.system()} {platform.machine()}".strip()
        manufacturer = read(f"{DMI}/sys_vendor") or "unknown"
    return Device(
        node=node_id(read(MACHINE_ID), name),
        name=name,
        model=model,
        manufacturer=manufacturer,
        sw_version=__version__,
        configuration_url=dashboard or dashboard_url(ports, tls, name),
    )
