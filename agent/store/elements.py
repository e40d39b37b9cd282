"""Network elements in the store: their record, schedule, credentials and object counts.

Blocking calls (the sync engine and the sharing service run them in threads). Methods
that take a ``Connection`` write inside the caller's transaction; the others open their
own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from agent.clock import now
from agent.errors import ElementNotFound, InvalidRequest
from agent.store.element_types import ELEMENT_TYPES, MESSAGING
from agent.store.encryption import KeyRing
from agent.store.models import CREDENTIALS, ELEMENTS, OBJECTS
from agent.store.rows import inserted_id
from agent.store.schedule import check_cron

ElementValue = str | int | bool | datetime | None
"""A value of an element column (``set_state(sync_state="idle", cursor=7)``)."""


@dataclass(frozen=True, slots=True)
class Element:
    """One ``elements`` row; ``uses`` decoded (the names a messaging element uses)."""

    id: int
    name: str
    type: str
    address: str
    connector: str
    interval: int
    cron: str
    sync_state: str
    cursor: int
    epoch: str
    software_version: str
    agent_version: str
    last_init_ok: bool
    generation: int
    last_sync_at: datetime | None
    created_at: datetime
    remote_id: str
    sharing: bool
    sharing_epoch: str
    device_data: bool
    uses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Credentials:
    """An element's login, in the clear (the store keeps it sealed)."""

    username: str
    password: str = field(repr=False)


def _element(row: Row[tuple[object, ...]]) -> Element:
    values = dict(row._mapping)
    values["uses"] = tuple(json.loads(str(values["uses"] or "[]")))
    return Element(**values)


class Elements:
    """The ``elements`` table with the credentials and the hub's copy of their objects."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(
        self,
        name: str,
        element_type: str,
        address: str,
        connector: str,
        interval: int,
        credentials: Credentials | None,
        cron: str = "",
        uses: list[str] | None = None,
        *,
        ring: KeyRing,
    ) -> Element:
        if element_type not in ELEMENT_TYPES:
            raise InvalidRequest(f"type must be one of {', '.join(ELEMENT_TYPES)}")
        used = self._check_uses(element_type, uses or [])
        _check_address(address, connector)
        try:
            with self.engine.begin() as conn:
                element_id = inserted_id(
                    conn.execute(
                        insert(ELEMENTS).values(
                            name=name,
                            type=element_type,
                            address=address,
                            connector=connector,
                            interval=interval,
                            cron=check_cron(cron),
                            sync_state="never",
                            cursor=0,
                            epoch="",
                            software_version="",
                            agent_version="",
                            last_init_ok=False,
                            generation=0,
                            uses=used,
                            created_at=now(),
                        )
                    )
                )
                if credentials is not None:
                    conn.execute(
                        insert(CREDENTIALS).values(
                            element_id=element_id, **_sealed(ring, credentials)
                        )
                    )
        except IntegrityError:
            raise InvalidRequest(f"an element named {name!r} exists") from None
        return self.get(name)

    def get(self, name: str) -> Element:
        with self.engine.connect() as conn:
            row = conn.execute(select(ELEMENTS).where(ELEMENTS.c.name == name)).first()
        if row is None:
            raise ElementNotFound(f"no element named {name!r}")
        return _element(row)

    def find(self, ident: str) -> Element:
        """An element by its name on the hub, or by the id it gives itself (Element API info)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(ELEMENTS).where(ELEMENTS.c.name == ident)).first()
            if row is None and ident:
                row = conn.execute(select(ELEMENTS).where(ELEMENTS.c.remote_id == ident)).first()
        if row is None:
            raise ElementNotFound(f"no element named {ident!r} (nor one that calls itself so)")
        return _element(row)

    def by_id(self, element_id: int) -> Element | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(ELEMENTS).where(ELEMENTS.c.id == element_id)).first()
        return None if row is None else _element(row)

    def all(self) -> list[Element]:
        with self.engine.connect() as conn:
            return [_element(r) for r in conn.execute(select(ELEMENTS).order_by(ELEMENTS.c.name))]

    def object_counts(self, element_id: int) -> dict[str, int]:
        """The hub's copy of the element's objects: how many per class."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(OBJECTS.c.cls, func.count())
                .where(OBJECTS.c.element_id == element_id)
                .group_by(OBJECTS.c.cls)
            )
            return {str(cls): int(count) for cls, count in rows}

    def object_counts_all(self) -> dict[int, dict[str, int]]:
        """:meth:`object_counts` of every element at once (by element id; an element
        without objects is left out)."""
        found: dict[int, dict[str, int]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(OBJECTS.c.element_id, OBJECTS.c.cls, func.count()).group_by(
                    OBJECTS.c.element_id, OBJECTS.c.cls
                )
            )
            for element_id, cls, count in rows:
                found.setdefault(int(element_id), {})[str(cls)] = int(count)
        return found

    def set_schedule(
        self,
        name: str,
        interval: int | None,
        cron: str | None,
        url: str | None = None,
        uses: list[str] | None = None,
    ) -> Element:
        element = self.get(name)
        values: dict[str, ElementValue] = {}
        if url is not None:
            _check_address(url, element.connector)
            values["address"] = url
        if uses is not None:
            values["uses"] = self._check_uses(element.type, uses)
        if interval is not None:
            if interval < 0:
                raise InvalidRequest("interval cannot be negative")
            values["interval"] = interval
        if cron is not None:
            values["cron"] = check_cron(cron)
        if values:
            self.set_state(element.id, **values)
        return self.get(name)

    def _check_uses(self, element_type: str, uses: list[str]) -> str:
        """JSON list of the network elements a messaging element is programmed with."""
        if uses and element_type != MESSAGING:
            raise InvalidRequest("only messaging elements use other network elements")
        known = {element.name for element in self.all()}
        missing = [name for name in uses if name not in known]
        if missing:
            raise InvalidRequest(f"no element named {', '.join(missing)}")
        return json.dumps(sorted(set(uses)))

    def credentials(self, element_id: int, ring: KeyRing) -> Credentials | None:
        """The element's credentials, decrypted (StoreKeyError if the key ring cannot)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(CREDENTIALS).where(CREDENTIALS.c.element_id == element_id)
            ).first()
        if row is None:
            return None
        return Credentials(
            ring.unseal(row.username, row.key_id), ring.unseal(row.password, row.key_id)
        )

    def set_credentials(self, name: str, credentials: Credentials, ring: KeyRing) -> None:
        element = self.get(name)
        with self.engine.begin() as conn:
            conn.execute(delete(CREDENTIALS).where(CREDENTIALS.c.element_id == element.id))
            conn.execute(
                insert(CREDENTIALS).values(element_id=element.id, **_sealed(ring, credentials))
            )

    def remove(self, name: str) -> None:
        """The element, its credentials and the hub's copy of its objects; it leaves the
        ``uses`` of the messaging elements programmed with it (a name that no longer
        exists there would be refused by any later change of their list)."""
        element = self.get(name)
        users = [e for e in self.all() if name in e.uses]
        with self.engine.begin() as conn:
            for user in users:
                left = json.dumps(sorted(n for n in user.uses if n != name))
                self.update(conn, user.id, uses=left)
            for table, column in (
                (OBJECTS, OBJECTS.c.element_id),
                (CREDENTIALS, CREDENTIALS.c.element_id),
            ):
                conn.execute(delete(table).where(column == element.id))
            conn.execute(delete(ELEMENTS).where(ELEMENTS.c.id == element.id))

    def set_state(self, element_id: int, **values: ElementValue) -> None:
        with self.engine.begin() as conn:
            self.update(conn, element_id, **values)

    def update(self, conn: Connection, element_id: int, **values: ElementValue) -> None:
        conn.execute(update(ELEMENTS).where(ELEMENTS.c.id == element_id).values(**values))

    def stop_sharing_all(self, conn: Connection) -> None:
        """No element shares, nor sends device data (sharing was disabled)."""
        conn.execute(update(ELEMENTS).values(sharing=False, device_data=False))

    def sharing_targets(
        self, conn: Connection, exclude: int | None = None
    ) -> list[tuple[int, str]]:
        """(id, name) of the sharing elements, but ``exclude``: who a hub change goes to."""
        rows = conn.execute(
            select(ELEMENTS.c.id, ELEMENTS.c.name)
            .where(ELEMENTS.c.sharing.is_(True))
            .order_by(ELEMENTS.c.id)
        )
        return [(int(i), str(n)) for i, n in rows if i != exclude]

    def targets(self) -> list[tuple[int, str]]:
        """(id, name) of every sharing element, read in a transaction of its own."""
        with self.engine.connect() as conn:
            return self.sharing_targets(conn)


def _check_address(address: str, connector: str) -> None:
    if not address.startswith(("http://", "https://")) and connector == "http":
        raise InvalidRequest("the http connector needs a URL such as http://host:port")


def _sealed(ring: KeyRing, credentials: Credentials) -> dict[str, str]:
    """The row values: never the clear username or password (encrypted at rest)."""
    return {
        "username": ring.seal(credentials.username),
        "password": ring.seal(credentials.password),
        "key_id": ring.primary.id,
    }
