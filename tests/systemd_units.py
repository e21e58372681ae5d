"""The shipped systemd unit files, and a reader for their directives."""

from __future__ import annotations

import os

from tests.daemon import PROJECT

SERVICE = os.path.join(PROJECT, "etc", "pistatsd.service")
SOCKET = os.path.join(PROJECT, "etc", "pistatsd.socket")


def unit(path: str) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                current = sections.setdefault(line.strip("[]"), {})
                continue
            key, _, value = line.partition("=")
            current.setdefault(key.strip(), []).append(value.strip())
    return sections
