"""A real rsyslogd on loopback ports, writing the fields it parsed, one file per input."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import free_port, free_udp_port

# One line per message: the fields rsyslog parsed from it, apart by a separator that
# messages do not hold (resolution hints contain "|").
SEPARATOR = "#~#"
TEMPLATE = (
    SEPARATOR.join(
        [
            "%syslogseverity%",
            "%syslogfacility-text%",
            "%app-name%",
            "%procid%",
            "%msgid%",
            "%structured-data%",
            "%msg%",
        ]
    )
    + "\\n"
)
INPUTS = ("udp", "tcp", "tls", "relp")
# raw=True: each message also as it arrived, byte for byte, ended by this marker (the
# messages may hold newlines and any other octet).
RAW_END = b"<<<RAW-MESSAGE-END>>>\n"


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 / localhost, as PEM files."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "provsync test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {
        "ca": directory / "ca.pem",
        "cert": directory / "server.pem",
        "key": directory / "server.key",
    }
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths["fingerprint"] = directory / "server.sha256"
    paths["fingerprint"].write_text(cert.fingerprint(hashes.SHA256()).hex())
    return paths


class Rsyslog:
    """rsyslogd with one input per transport.

    ``raw``: also writes every message as received (``%rawmsg%``) to ``<input>.raw``, with
    control characters kept (``parser.escapeControlCharactersOnReceive="off"``) and
    messages up to 64 KiB accepted on every input, so that a test sees what was sent.
    """

    def __init__(self, root: Path, *, raw: bool = False) -> None:
        if shutil.which("rsyslogd") is None and not Path("/usr/sbin/rsyslogd").exists():
            pytest.fail("rsyslogd is not installed; `make test` installs Debian rsyslog")
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.ports = {
            "udp": free_udp_port(),
            "tcp": free_port(),
            "tls": free_port(),
            "relp": free_port(),
        }
        self.certs = make_certificates(root)
        self.proc: subprocess.Popen[bytes] | None = None
        work = root / "work"
        work.mkdir(exist_ok=True)
        lines = [
            f'global(workDirectory="{work}"',
            f'       defaultNetstreamDriverCAFile="{self.certs["ca"]}"',
            f'       defaultNetstreamDriverCertFile="{self.certs["cert"]}"',
            f'       defaultNetstreamDriverKeyFile="{self.certs["key"]}"',
            '       maxMessageSize="64k" parser.escapeControlCharactersOnReceive="off"'
            if raw
            else "",
            ")",
            'module(load="imudp")',
            'module(load="imtcp" maxSessions="100")',
            'module(load="imrelp")',
            f'template(name="fields" type="string" string="{TEMPLATE}")',
            f'template(name="raw" type="string" string="%rawmsg%{RAW_END.decode()[:-1]}\\n")',
        ]
        for name in INPUTS:
            raw_action = (
                f'action(type="omfile" file="{self.raw_output(name)}" template="raw")'
                if raw
                else ""
            )
            lines.append(
                f'ruleset(name="r_{name}") {{ action(type="omfile" '
                f'file="{self.output(name)}" template="fields") '
                f"{raw_action} }}"
            )
        lines += [
            f'input(type="imudp" address="127.0.0.1" port="{self.ports["udp"]}" ruleset="r_udp")',
            f'input(type="imtcp" address="127.0.0.1" port="{self.ports["tcp"]}" ruleset="r_tcp")',
            f'input(type="imtcp" address="127.0.0.1" port="{self.ports["tls"]}" ruleset="r_tls"'
            ' streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")',
            f'input(type="imrelp" address="127.0.0.1" port="{self.ports["relp"]}"'
            ' ruleset="r_relp")',
        ]
        self.config = root / "rsyslog.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def output(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def raw_output(self, name: str) -> Path:
        return self.root / f"{name}.raw"

    def raw_messages(self, name: str) -> list[bytes]:
        """The messages ``name`` received, as received (``raw=True``)."""
        path = self.raw_output(name)
        if not path.exists():
            return []
        return path.read_bytes().split(RAW_END)[:-1]

    def wait_for_raw(self, name: str, count: int, within: float = 30) -> list[bytes]:
        deadline = time.monotonic() + within
        while True:
            got = self.raw_messages(name)
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def start(self) -> None:
        handle = (self.root / "rsyslogd.out").open("ab")
        self.proc = subprocess.Popen(
            [
                shutil.which("rsyslogd") or "/usr/sbin/rsyslogd",
                "-n",
                "-f",
                str(self.config),
                "-i",
                str(self.root / "rsyslogd.pid"),
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("RSYSLOG_DEBUG")},
        )
        handle.close()
        import socket

        deadline = time.monotonic() + 15
        for name in ("tcp", "tls", "relp"):
            while time.monotonic() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", self.ports[name]), timeout=0.5):
                        break
                except OSError:
                    time.sleep(0.05)
        if self.proc.poll() is not None:
            raise AssertionError((self.root / "rsyslogd.out").read_text())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)
        self.proc = None

    def lines(self, name: str) -> list[dict[str, str]]:
        path = self.output(name)
        if not path.exists():
            return []
        parsed = []
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split(SEPARATOR, 6)
            if len(parts) < 7:
                continue
            severity, facility, app, procid, msgid, sd, msg = parts
            parsed.append(
                {
                    "severity": severity,
                    "facility": facility,
                    "app": app,
                    "procid": procid,
                    "msgid": msgid,
                    "sd": sd,
                    "msg": msg.removeprefix("\ufeff"),
                }
            )
        return parsed

    def wait_for(self, name: str, count: int, within: float = 30) -> list[dict[str, str]]:
        deadline = time.monotonic() + within
        while True:
            got = self.lines(name)
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.1)
