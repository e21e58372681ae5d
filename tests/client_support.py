"""What the client's tests in both rooms share: a stats message, the shape
of a watch line, certificates made on the spot."""

from __future__ import annotations

import datetime
import json
import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TICK = re.compile(
    r"^\d\d:\d\d:\d\d  cpu +(-|\d+\.\d%)  mem +(-|\d+\.\d%)  temp +(-|-?\d+\.\d°C)"
    r"  load (-|\d+\.\d\d \d+\.\d\d \d+\.\d\d)$"
)
MESSAGE = {
    "type": "stats",
    "sent": 1732240001.5,
    "hostname": "pi",
    "cpu": {"percent": 12.5, "load": [0.1, 0.2, 0.3]},
    "memory": {"percent": 37.2},
    "temperature": {"celsius": 48.3},
    "uptime": {"seconds": 86401.0},
}


def _json(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


NOW = datetime.datetime.now(datetime.UTC)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    key: ec.EllipticCurvePrivateKey,
    subject: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer: str,
    *,
    ca: bool,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())
