"""Loopback ports for the peer test drivers (peers.py, oauth/oauth_test.py)."""

from __future__ import annotations

import socket


def free_ports(n: int) -> list[int]:
    """Ask the kernel for n distinct free ephemeral ports on 127.0.0.1 (all held until all are
    known, so none repeats)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def accepts(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
