"""Elements and jobs in the store (blocking calls; the engine runs them in threads)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from agent.alarms.records import iso
from agent.clock import now
from agent.connectors.base import Credentials
from agent.errors import ElementNotFound, InvalidRequest
from agent.store.element_types import ELEMENT_TYPES, MESSAGING
from agent.store.encryption import KeyRing
from agent.store.models import CREDENTIALS, ELEMENTS, JOBS, OBJECTS

__all__ = ["ELEMENT_TYPES", "now"]  # callers take both from here (registry.now())


def _new_id(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def element_json(row: Any, counts: dict[str, int] | None = None) -> dict[str, Any]:
    data = {
        "name": row.name,
        "type": row.type,
        "address": row.address,
        "connector": row.connector,
        "interval": row.interval,
        "cron": row.cron,
        "sync_state": row.sync_state,
        "cursor": row.cursor,
        "epoch": row.epoch,
        "software_version": row.software_version,
        "last_init_ok": row.last_init_ok,
        "remote_id": row.remote_id,
        "sharing": row.sharing,
        "device_data": row.device_data,
        "uses": json.loads(row.uses or "[]"),
        "last_sync_at": iso(row.last_sync_at),
        "created_at": iso(row.created_at),
    }
    if counts is not None:
        data["objects"] = counts
    return data


def job_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "element": row.element,
        "kind": row.kind,
        "trigger": row.trigger,
        "state": row.state,
        "created": iso(row.created_at),
        "started": iso(row.started_at),
        "ended": iso(row.ended_at),
        "counts": json.loads(row.counts or "{}"),
        "error": row.error,
        "reason": row.reason,
    }


def check_cron(expression: str) -> str:
    """A crontab expression (five fields, UTC), or a clear error."""
    if not expression:
        return ""
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(expression, timezone=UTC)
    except ValueError as exc:
        raise InvalidRequest(f"cron {expression!r} is not a crontab expression: {exc}") from None
    return expression


def last_attempts(engine: Engine) -> dict[int, datetime]:
    """When each element's last job ended, whatever its outcome."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(JOBS.c.element_id, func.max(JOBS.c.ended_at)).group_by(JOBS.c.element_id)
        )
        return {element_id: ended for element_id, ended in rows if ended is not None}


def next_due(element: Any, last_attempt: datetime | None = None) -> datetime | None:
    """When the element's next scheduled incremental sync is due (None: no schedule).

    Counted from the last attempt, failed or not, so a failing element is tried once per
    period rather than continuously; an element whose initialization failed is scheduled
    too (its incremental sync escalates).
    """
    since: datetime = max(
        t for t in (element.last_sync_at, element.created_at, last_attempt) if t is not None
    )
    if element.cron:
        from apscheduler.triggers.cron import CronTrigger

        trigger = CronTrigger.from_crontab(element.cron, timezone=UTC)
        fire = trigger.get_next_fire_time(None, since)
        return fire if isinstance(fire, datetime) else None
    if element.interval > 0:
        return since + timedelta(seconds=element.interval)
    return None


def check_uses(engine: Engine, element_type: str, uses: list[str]) -> str:
    """JSON list of the network elements a messaging element is programmed with."""
    if uses and element_type != MESSAGING:
        raise InvalidRequest("only messaging elements use other network elements")
    known = {row.name for row in list_elements(engine)}
    missing = [name for name in uses if name not in known]
    if missing:
        raise InvalidRequest(f"no element named {', '.join(missing)}")
    return json.dumps(sorted(set(uses)))


def set_schedule(
    engine: Engine,
    name: str,
    interval: int | None,
    cron: str | None,
    url: str | None = None,
    uses: list[str] | None = None,
) -> Any:
    element = get_element(engine, name)
    values: dict[str, Any] = {}
    if url is not None:
        if not url.startswith(("http://", "https://")) and element.connector == "http":
            raise InvalidRequest("the http connector needs a URL such as http://host:port")
        values["address"] = url
    if uses is not None:
        values["uses"] = check_uses(engine, element.type, uses)
    if interval is not None:
        if interval < 0:
            raise InvalidRequest("interval cannot be negative")
        values["interval"] = interval
    if cron is not None:
        values["cron"] = check_cron(cron)
    if values:
        set_state(engine, element.id, **values)
    return get_element(engine, name)


def add_element(
    engine: Engine,
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
) -> Any:
    if element_type not in ELEMENT_TYPES:
        raise InvalidRequest(f"type must be one of {', '.join(ELEMENT_TYPES)}")
    used = check_uses(engine, element_type, uses or [])
    if not address.startswith(("http://", "https://")) and connector == "http":
        raise InvalidRequest("the http connector needs a URL such as http://host:port")
    try:
        with engine.begin() as conn:
            element_id = _new_id(
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
                    insert(CREDENTIALS).values(element_id=element_id, **_sealed(ring, credentials))
                )
    except IntegrityError:
        raise InvalidRequest(f"an element named {name!r} exists") from None
    return get_element(engine, name)


def get_element(engine: Engine, name: str) -> Any:
    with engine.connect() as conn:
        row = conn.execute(select(ELEMENTS).where(ELEMENTS.c.name == name)).first()
    if row is None:
        raise ElementNotFound(f"no element named {name!r}")
    return row


def find_element(engine: Engine, ident: str) -> Any:
    """An element by its name on the hub, or by the id it gives itself (Element API info)."""
    with engine.connect() as conn:
        row = conn.execute(select(ELEMENTS).where(ELEMENTS.c.name == ident)).first()
        if row is None and ident:
            row = conn.execute(select(ELEMENTS).where(ELEMENTS.c.remote_id == ident)).first()
    if row is None:
        raise ElementNotFound(f"no element named {ident!r} (nor one that calls itself so)")
    return row


def get_element_by_id(engine: Engine, element_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(ELEMENTS).where(ELEMENTS.c.id == element_id)).first()


def list_elements(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(ELEMENTS).order_by(ELEMENTS.c.name)))


def object_counts(engine: Engine, element_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(OBJECTS.c.cls, func.count())
            .where(OBJECTS.c.element_id == element_id)
            .group_by(OBJECTS.c.cls)
        )
        return {cls: count for cls, count in rows}  # noqa: C416 - rows have .keys()


def _sealed(ring: KeyRing, credentials: Credentials) -> dict[str, str]:
    """The row values: never the clear username or password (encrypted at rest)."""
    return {
        "username": ring.seal(credentials.username),
        "password": ring.seal(credentials.password),
        "key_id": ring.primary.id,
    }


def credentials_of(engine: Engine, element_id: int, ring: KeyRing) -> Credentials | None:
    """The element's credentials, decrypted (StoreKeyError if the key ring cannot)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(CREDENTIALS).where(CREDENTIALS.c.element_id == element_id)
        ).first()
    if row is None:
        return None
    return Credentials(ring.unseal(row.username, row.key_id), ring.unseal(row.password, row.key_id))


def set_credentials(engine: Engine, name: str, credentials: Credentials, ring: KeyRing) -> None:
    element = get_element(engine, name)
    with engine.begin() as conn:
        conn.execute(delete(CREDENTIALS).where(CREDENTIALS.c.element_id == element.id))
        conn.execute(
            insert(CREDENTIALS).values(element_id=element.id, **_sealed(ring, credentials))
        )


def remove_element(engine: Engine, name: str) -> None:
    element = get_element(engine, name)
    with engine.begin() as conn:
        for table, column in (
            (OBJECTS, OBJECTS.c.element_id),
            (CREDENTIALS, CREDENTIALS.c.element_id),
        ):
            conn.execute(delete(table).where(column == element.id))
        conn.execute(delete(ELEMENTS).where(ELEMENTS.c.id == element.id))


def set_state(engine: Engine, element_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(update(ELEMENTS).where(ELEMENTS.c.id == element_id).values(**values))


def create_job(engine: Engine, element: Any, kind: str, trigger: str, reason: str | None) -> int:
    with engine.begin() as conn:
        return _new_id(
            conn.execute(
                insert(JOBS).values(
                    element_id=element.id,
                    element=element.name,
                    kind=kind,
                    trigger=trigger,
                    state="queued",
                    created_at=now(),
                    counts="{}",
                    reason=reason,
                )
            )
        )


def update_job(engine: Engine, job_id: int, **values: Any) -> None:
    if "counts" in values:
        values["counts"] = json.dumps(values["counts"])
    with engine.begin() as conn:
        conn.execute(update(JOBS).where(JOBS.c.id == job_id).values(**values))


def get_job(engine: Engine, job_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(JOBS).where(JOBS.c.id == job_id)).first()


def list_jobs(engine: Engine, element: str | None = None, limit: int = 200) -> list[Any]:
    query = select(JOBS).order_by(JOBS.c.id.desc()).limit(limit)
    if element:
        query = query.where(JOBS.c.element == element)
    with engine.connect() as conn:
        return list(reversed(list(conn.execute(query))))


def fail_interrupted_jobs(engine: Engine) -> int:
    """Jobs left running or queued by a crash: failed, so the next sync escalates."""
    with engine.begin() as conn:
        result = conn.execute(
            update(JOBS)
            .where(JOBS.c.state.in_(["queued", "running"]))
            .values(state="failed", ended_at=now(), error="interrupted by an agent restart")
        )
        conn.execute(
            update(ELEMENTS)
            .where(ELEMENTS.c.sync_state == "running")
            .values(sync_state="failed", last_init_ok=False)
        )
    return int(result.rowcount or 0)
