"""What the MQTT options may hold: the broker URL and the topic prefixes, checked at start-up.

A broker URL carries no credentials (they would end up in logs and process
listings): the user is C{--mqtt-user}, the password comes from a file or the
environment.  A topic prefix is where this machine publishes; MQTT wildcards
or empty levels in it would make topics nobody can subscribe to exactly.
"""

from __future__ import annotations

import os
import re
import socket

from attrs import frozen

from pistatsd.errors import StartupError

#: The default ports of the two schemes (IANA: 1883 plain, 8883 over TLS).
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@frozen
class Broker:
    """Where the broker listens and whether to speak TLS to it."""

    host: str
    port: int
    tls: bool

    def __str__(self) -> str:
        """C{host:port}, for log lines: never anything secret."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_broker_url(text: str) -> Broker:
    """C{mqtt://host[:port]} or C{mqtts://host[:port]}; raise C{ValueError} saying what is wrong.

    The message never repeats the URL's user part, so a password written
    into it by mistake does not reach the log.
    """
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in DEFAULT_PORTS:
        raise ValueError("expected an mqtt:// or mqtts:// URL")
    scheme = scheme.lower()
    if "@" in rest:
        raise ValueError(
            "credentials do not belong in the URL: use --mqtt-user and --mqtt-password-file"
        )
    hostport = rest.rstrip("/")
    if "/" in hostport or "?" in hostport or "#" in hostport:
        raise ValueError("a broker URL has no path, query or fragment")
    if hostport.startswith("["):
        host, bracket, after = hostport[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            raise ValueError("unbalanced [ ] around an IPv6 address")
        port_text = after[1:] if after else ""
    else:
        host, _, port_text = hostport.partition(":")
        if ":" in port_text:
            raise ValueError("an IPv6 address must be written in [ ]")
    if not host:
        raise ValueError("no host")
    port = DEFAULT_PORTS[scheme]
    if port_text:
        if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"bad port {port_text!r}")
        port = int(port_text)
    return Broker(host=host, port=port, tls=scheme == "mqtts")


def check_topic_prefix(text: str) -> str:
    """A topic prefix without wildcards, empty levels or a leading C{$}; C{ValueError} if not."""
    if not text:
        raise ValueError("must not be empty")
    if "+" in text or "#" in text:
        raise ValueError("MQTT wildcards (+, #) cannot be part of a topic")
    if "\x00" in text:
        raise ValueError("a topic cannot hold a NUL character")
    if text.startswith("$"):
        raise ValueError("topics starting with $ belong to the broker")
    if any(not level for level in text.split("/")):
        raise ValueError("empty topic level (a leading, trailing or double /)")
    if len(text.encode("utf-8")) > 1024:
        raise ValueError("too long")
    return text


_NOT_IN_TOPIC = re.compile(r"[^A-Za-z0-9_.-]+")


def default_prefix(hostname: str | None = None) -> str:
    """C{pistatsd/<hostname>}, the hostname made safe for one topic level."""
    name = _NOT_IN_TOPIC.sub("_", hostname or socket.gethostname()).strip("_") or "host"
    return f"pistatsd/{name}"


def check_mqtt(config: object) -> None:
    """The MQTT options fit together; run with the other start-up checks.

    @param config: the L{pistatsd.config.Config} (typed loosely to keep this
        module free of the configuration's import).
    """
    url = getattr(config, "mqtt", None)
    cafile = getattr(config, "mqtt_cafile", None)
    user = getattr(config, "mqtt_user", None)
    password = getattr(config, "mqtt_password", None)
    if url is None:
        return
    broker = parse_broker_url(url)
    if cafile is not None:
        if not broker.tls:
            raise StartupError("--mqtt-cafile: needs an mqtts:// broker URL")
        if not os.path.isfile(cafile):
            raise StartupError(f"--mqtt-cafile {cafile}: no such file")
        # pyOpenSSL is imported only for a broker that speaks TLS.
        from pistatsd.pem import load_certificates

        try:
            with open(cafile, "rb") as f:
                load_certificates(f.read())
        except OSError as e:
            raise StartupError(f"--mqtt-cafile {cafile}: cannot read it: {e.strerror}") from None
        except ValueError as e:
            raise StartupError(f"--mqtt-cafile {cafile}: {e}") from None
    if password is not None and not password.isascii():
        # twisted-mqtt sends the password as ASCII, dropping anything else.
        raise StartupError("--mqtt-password-file: the MQTT password must be ASCII")
    if password is not None and user is None:
        raise StartupError(
            "--mqtt-password-file: a password (file or PISTATSD_MQTT_PASSWORD) needs --mqtt-user"
        )
