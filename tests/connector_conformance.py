"""A conformance suite any connector can reuse.

Subclass :class:`ConnectorConformance` and provide the ``element`` fixture: an object
with ``connect(credentials)`` returning a connector, ``credentials``, and ``change(user,
op, cls, key, data)`` / ``new_epoch()`` / ``reject(cls, prefix, reason)`` acting on the
element as its own administrators would.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent.connectors.base import Connector, Credentials
from agent.errors import AuthIncorrect, AuthMissing, CursorGone, UpdateRejected


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def read_all(connector: Connector, cls: str, limit: int = 7) -> dict[str, Any]:
    found: dict[str, Any] = {}
    page = await connector.objects(cls, limit=limit)
    snapshot = page.snapshot
    while True:
        found.update({o.key: o.data for o in page.objects})
        if page.next is None:
            return found
        page = await connector.objects(cls, after=page.next, snapshot=snapshot, limit=limit)


class ConnectorConformance:
    def test_info(self, element: Any) -> None:
        async def scenario() -> None:
            async with element.connect(element.credentials) as connector:
                info = await connector.info()
                assert info.element_id
                assert info.software_version
                assert info.epoch
                assert "station" in info.classes

        run(scenario())

    def test_missing_and_wrong_credentials_are_told_apart(self, element: Any) -> None:
        async def scenario() -> None:
            async with element.connect(None) as connector:
                with pytest.raises(AuthMissing):
                    await connector.info()
            wrong = Credentials(element.credentials.username, "not-the-password")
            async with element.connect(wrong) as connector:
                with pytest.raises(AuthIncorrect):
                    await connector.info()

        run(scenario())

    def test_paging_reads_every_object_once(self, element: Any) -> None:
        async def scenario() -> None:
            async with element.connect(element.credentials) as connector:
                info = await connector.info()
                for cls in info.classes:
                    small = await read_all(connector, cls, limit=7)
                    large = await read_all(connector, cls, limit=5000)
                    assert small == large

        run(scenario())

    def test_change_log_with_users_and_gone(self, element: Any) -> None:
        async def scenario() -> None:
            async with element.connect(element.credentials) as connector:
                info = await connector.info()
                element.change("tech1", "create", "station", "77001", {"number": "77001"})
                element.change(
                    "tech2", "update", "station", "77001", {"number": "77001", "type": "J179"}
                )
                element.change("tech1", "delete", "station", "77001", None)
                page = await connector.changes(info.last_seq, epoch=info.epoch)
                assert [(c.op, c.user, c.key) for c in page.changes] == [
                    ("create", "tech1", "77001"),
                    ("update", "tech2", "77001"),
                    ("delete", "tech1", "77001"),
                ]
                assert page.changes[1].data == {"number": "77001", "type": "J179"}
                assert page.last_seq == page.changes[-1].seq
                element.new_epoch()
                with pytest.raises(CursorGone):
                    await connector.changes(page.last_seq, epoch=info.epoch)

        run(scenario())

    def test_apply_accepts_and_rejects(self, element: Any) -> None:
        async def scenario() -> None:
            async with element.connect(element.credentials) as connector:
                seq = await connector.apply(
                    "station", "88001", "create", {"number": "88001"}, user="provsync"
                )
                page = await connector.changes(seq - 1, epoch=None)
                assert page.changes[0].user == "provsync"
                element.reject("station", "881", "number range not allowed")
                with pytest.raises(UpdateRejected, match="number range not allowed"):
                    await connector.apply(
                        "station", "88101", "create", {"number": "88101"}, user="provsync"
                    )

        run(scenario())
