"""A free loopback port for the processes and receivers a bench starts."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port of ``kind`` (TCP unless told) nothing is bound to on the loopback, as the
    kernel picks one: free when this returns, not reserved afterwards."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port
