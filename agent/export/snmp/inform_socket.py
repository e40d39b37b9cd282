"""The pysnmp client socket that SNMPv3 informs go out on, screened like the listener.

pysnmp opens it unbound, so the kernel binds it to an ephemeral port on every address at
the first inform: anyone who finds the port can send to it, and pysnmp's pyasn1 decoder
would read whatever arrives (the slow huge-OID decode included). Only answers to the
agent's informs belong there (agent.export.snmp.screen.screen_v3_reply); everything else
is dropped after a header walk and counted under ``inform_socket.<reason>`` in the SNMP
counters (``snmp.requests`` in ``GET /api/v1/status``).
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from pysnmp.carrier.asyncio.dgram import udp, udp6

from agent.export.snmp import screen
from agent.export.snmp.counters import INFORM_SOCKET
from agent.export.snmp.drops import DropCounter
from agent.export.snmp.rate_limits import SenderBudget
from agent.export.snmp.v3auth import KnownUser


class ScreenedClientTransport(udp.UdpAsyncioTransport):  # type: ignore[misc]
    """pysnmp's UDP client transport, handing pysnmp only what passed the screen.

    Args:
        users: the USM users (the targets' users sign the receivers' answers).
        counters: where drops are counted (with :data:`INFORM_SOCKET`).
    """

    def __init__(
        self, users: Mapping[bytes, KnownUser], counters: MutableMapping[str, int]
    ) -> None:
        super().__init__()
        self._setup(users, counters)

    def _setup(self, users: Mapping[bytes, KnownUser], counters: MutableMapping[str, int]) -> None:
        self._users = users
        self._drops = DropCounter(
            counters, prefix=INFORM_SOCKET, label="SNMP datagram dropped at the inform socket"
        )
        self._budget = SenderBudget()

    def datagram_received(self, datagram: bytes, address: Any) -> None:
        host, source = _peer(address)
        refused = screen.screen_v3_reply(datagram, self._users, self._budget, host)
        if refused is not None:
            self._drops.drop(refused[0], source, refused[1])
            return
        super().datagram_received(datagram, address)


class ScreenedClientTransport6(udp6.Udp6AsyncioTransport, ScreenedClientTransport):  # type: ignore[misc]
    def __init__(
        self, users: Mapping[bytes, KnownUser], counters: MutableMapping[str, int]
    ) -> None:
        udp6.Udp6AsyncioTransport.__init__(self)
        self._setup(users, counters)

    datagram_received = ScreenedClientTransport.datagram_received


def _peer(address: Any) -> tuple[str, str]:
    """(host, host:port) of a sender."""
    try:
        return str(address[0]), f"{address[0]}:{address[1]}"
    except (TypeError, IndexError):
        return str(address), str(address)
