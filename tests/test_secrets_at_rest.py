"""Secrets at rest: private data directory, element credentials encrypted, key rotation.

Real ``provsync run`` agents and ``provsync simulate`` elements for the wiring; the key
ring and rotation steps in-process for the rules.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AgentProcess
from tests.simulated import SimulatedElement

PASSWORD = "s3cret-pass"


@pytest.fixture
def element(tmp_path: Path) -> Iterator[SimulatedElement]:
    simulated = SimulatedElement(tmp_path / "sim", objects=30)
    yield simulated
    simulated.stop()


def start_with_umask(agent: AgentProcess, umask: int) -> AgentProcess:
    # The child inherits the umask at fork: this is the operator's shell umask.
    previous = os.umask(umask)
    try:
        agent.start()
    finally:
        os.umask(previous)
    return agent


def add_element(agent: AgentProcess, element: SimulatedElement, tmp_path: Path) -> None:
    """``provsync elements add --password-file``, then its initialization sync must succeed."""
    password_file = tmp_path / "cm1.password"
    password_file.write_text(PASSWORD + "\n")
    agent.cli(
        "elements",
        "add",
        "cm1",
        "--url",
        element.url,
        "--username",
        "admin",
        "--password-file",
        str(password_file),
    )
    with agent.http() as http:
        jobs = http.get("/api/v1/jobs", params={"element": "cm1"}).json()
    job = agent.wait_job(jobs[-1]["id"])
    assert job["state"] == "done", job


def incremental_works(agent: AgentProcess) -> None:
    """The connector logs in with the decrypted password (the simulator refuses others)."""
    with agent.http() as http:
        response = http.post("/api/v1/elements/cm1/sync", json={"kind": "incremental"})
        assert response.status_code == 200, response.text
    job = agent.wait_job(response.json()["job"])
    assert job["state"] == "done", job


def files_holding(directory: Path, needle: bytes) -> list[str]:
    return [str(p) for p in directory.rglob("*") if p.is_file() and needle in p.read_bytes()]


def key_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def wait_exit(agent: AgentProcess, within: float = 30) -> int:
    assert agent.proc is not None
    try:
        return agent.proc.wait(within)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"agent still running:\n{agent.log_text()}") from None


def credential_rows(agent: AgentProcess) -> list[tuple[Any, ...]]:
    with sqlite3.connect(agent.data_dir / "provsync.db") as conn:
        return conn.execute("SELECT username, password, key_id FROM element_credentials").fetchall()


# ------------------------------------------------------------------ file modes
@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_data_dir_is_0700_and_every_file_in_it_0600_whatever_the_umask(
    agent_factory: Any, element: SimulatedElement, tmp_path: Path, umask: int
) -> None:
    agent = start_with_umask(agent_factory(), umask)
    add_element(agent, element, tmp_path)
    assert mode(agent.data_dir) == 0o700
    files = {p.name: mode(p) for p in agent.data_dir.rglob("*") if p.is_file()}
    # The store with its WAL companions and lock, the elements' token, the key file, the
    # SNMP engine state and the JSON-lines exporter file all exist at this point.
    for name in (
        "provsync.db",
        "provsync.db-wal",
        "provsync.db-shm",
        "provsync.db.lock",
        "element.token",
        "secret.key",
        "notifications.jsonl",
    ):
        assert name in files, sorted(files)
    assert {n: oct(m) for n, m in files.items() if m != 0o600} == {}


def test_existing_wider_modes_are_tightened_on_start(
    agent_factory: Any, element: SimulatedElement, tmp_path: Path
) -> None:
    agent = start_with_umask(agent_factory(), 0o022)
    add_element(agent, element, tmp_path)
    assert agent.stop() == 0
    # What an older release left behind.
    agent.data_dir.chmod(0o755)
    for path in agent.data_dir.iterdir():
        path.chmod(0o644)
    start_with_umask(agent, 0o022)
    assert mode(agent.data_dir) == 0o700
    assert {p.name: oct(mode(p)) for p in agent.data_dir.iterdir() if mode(p) != 0o600} == {}
    assert "tightened" in agent.log_text()
    incremental_works(agent)


def test_start_leaves_what_the_agent_did_not_make_alone_and_keeps_owner_bits(
    agent_factory: Any, element: SimulatedElement, tmp_path: Path
) -> None:
    """A data_dir set to an install directory or $HOME must not lose its exec bits."""
    agent = agent_factory()
    agent.data_dir.mkdir(mode=0o755)
    script = agent.data_dir / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    tools = agent.data_dir / ".venv" / "bin"
    tools.mkdir(parents=True)
    (tools / "python").write_text("#!/bin/sh\n")
    (tools / "python").chmod(0o755)
    notes = agent.data_dir / "notes.txt"
    notes.write_text("not the agent's\n")
    notes.chmod(0o644)
    start_with_umask(agent, 0o022)
    add_element(agent, element, tmp_path)
    assert agent.stop() == 0
    # The agent's own files, as a wide umask or an older release left them.
    (agent.data_dir / "element.token").chmod(0o664)
    (agent.data_dir / "provsync.db").chmod(0o644)
    (agent.data_dir / "secret.key").chmod(0o440)  # owner read-only: stays so
    start_with_umask(agent, 0o022)
    assert mode(agent.data_dir) == 0o700
    assert mode(script) == 0o755
    assert mode(agent.data_dir / ".venv") == 0o755
    assert mode(tools) == 0o755
    assert mode(tools / "python") == 0o755
    assert mode(notes) == 0o644
    assert mode(agent.data_dir / "element.token") == 0o600
    assert mode(agent.data_dir / "provsync.db") == 0o600
    assert mode(agent.data_dir / "secret.key") == 0o400
    incremental_works(agent)


# ------------------------------------------------------------------ encryption at rest
def test_sqlite_store_holds_no_clear_password_and_sync_still_works(
    agent_factory: Any, element: SimulatedElement, tmp_path: Path
) -> None:
    agent = agent_factory().start()
    add_element(agent, element, tmp_path)
    incremental_works(agent)
    assert files_holding(agent.data_dir, PASSWORD.encode()) == []
    ((username, password, key_id),) = credential_rows(agent)
    assert username != "admin"
    assert password != PASSWORD
    assert key_id
    (key,) = key_lines(agent.data_dir / "secret.key")
    log = agent.log_text()
    assert PASSWORD not in log
    assert key not in log
    assert agent.stop() == 0
    assert files_holding(agent.data_dir, PASSWORD.encode()) == []


def test_clear_text_credentials_of_an_older_store_are_encrypted_in_place_on_start(
    agent_factory: Any, element: SimulatedElement, tmp_path: Path
) -> None:
    agent = agent_factory().start()
    add_element(agent, element, tmp_path)
    assert agent.stop() == 0
    # A store from before encryption: the migration leaves its rows in the clear (no key id).
    with sqlite3.connect(agent.data_dir / "provsync.db") as conn:
        conn.execute(
            "UPDATE element_credentials SET username='admin', password=?, key_id=''", (PASSWORD,)
        )
    assert files_holding(agent.data_dir, PASSWORD.encode()) != []
    agent.start()
    assert "encrypted 1 element credential" in agent.log_text()
    assert files_holding(agent.data_dir, PASSWORD.encode()) == []
    incremental_works(agent)


@pytest.mark.postgres
def test_postgresql_dump_holds_no_clear_password_before_and_after_a_rotation(
    agent_factory: Any, element: SimulatedElement, tmp_path: Path, pg_url: str
) -> None:
    agent = agent_factory({"store": {"url": pg_url}}).start()
    add_element(agent, element, tmp_path)
    incremental_works(agent)
    assert PASSWORD not in pg_dump(pg_url)
    assert agent.stop() == 0
    (old,) = key_lines(agent.data_dir / "secret.key")
    assert "1 element credential" in agent.cli("keys", "rotate").stdout
    assert key_lines(agent.data_dir / "secret.key") != [old]
    assert PASSWORD not in pg_dump(pg_url)
    agent.start()
    incremental_works(agent)


def pg_dump(url: str) -> str:
    """What a dump of the database shows (the table itself where pg_dump is missing)."""
    dump = shutil.which("pg_dump")
    if dump is not None:
        command = [dump, "--data-only", "--table=element_credentials", url]
        text = subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=60
        ).stdout
        assert "COPY public.element_credentials" in text
        return text
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT * FROM element_credentials").fetchall()
    assert rows
    return repr(rows)


# ------------------------------------------------------------------ key: missing, wrong, rotated
def test_rotate_key_offline_then_old_key_no_longer_decrypts_and_missing_key_is_one_line(
    agent_factory: Any, element: SimulatedElement, tmp_path: Path
) -> None:
    agent = agent_factory().start()
    add_element(agent, element, tmp_path)
    key_file = agent.data_dir / "secret.key"

    busy = agent.cli("keys", "rotate", check=False)
    assert busy.returncode == 1, busy
    assert "in use" in busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1
    assert agent.stop() == 0

    old_key = tmp_path / "old.key"
    shutil.copy(key_file, old_key)
    rotated = agent.cli("keys", "rotate")
    assert "1 element credential" in rotated.stdout
    (new,) = key_lines(key_file)
    assert key_lines(old_key) != [new], "old key dropped"
    assert mode(key_file) == 0o600
    assert files_holding(agent.data_dir, PASSWORD.encode()) == []

    agent.start()
    incremental_works(agent)
    assert agent.stop() == 0

    shutil.copy(old_key, key_file)
    agent.start(wait=False)
    assert wait_exit(agent) == 1
    last = agent.log_text().strip().splitlines()[-1]
    assert "secret.key" in last
    assert "does not hold key" in last
    assert "Traceback" not in agent.log_text()

    key_file.unlink()
    agent.start(wait=False)
    assert wait_exit(agent) == 1
    last = agent.log_text().strip().splitlines()[-1]
    assert "secret.key" in last
    assert "does not exist" in last
    assert not key_file.exists(), "no new key made while encrypted credentials wait for theirs"
    assert len(credential_rows(agent)) == 1, "credentials kept"

    # The key is lost for good: the operator says so, and re-enters the credentials.
    refused = agent.cli("keys", "reset", check=False)
    assert refused.returncode == 2
    assert credential_rows(agent)
    reset = agent.cli("keys", "reset", "--yes")
    assert "cm1" in reset.stdout
    assert credential_rows(agent) == []
    assert key_lines(key_file)
    agent.start()
    password_file = tmp_path / "cm1.password"
    agent.cli(
        "elements",
        "set-credentials",
        "cm1",
        "--username",
        "admin",
        "--password-file",
        str(password_file),
    )
    incremental_works(agent)


# ------------------------------------------------------------------ rules, in-process
def _credentials(store: Any, ring: Any) -> Any:
    from agent.store.access import StoreAccess

    element = StoreAccess(store.engine).elements.get("cm1")
    return StoreAccess(store.engine).elements.credentials(element.id, ring)


def _add(store: Any, ring: Any) -> None:
    from agent.store.access import StoreAccess
    from agent.store.elements import Credentials

    StoreAccess(store.engine).elements.add(
        "cm1",
        "call-server",
        "http://127.0.0.1:9",
        "http",
        0,
        Credentials("admin", PASSWORD),
        ring=ring,
    )


def test_a_bad_key_file_line_is_named_by_number_and_never_shown(tmp_path: Path) -> None:
    from agent.errors import StoreKeyError
    from agent.store.encryption import read_key_file

    path = tmp_path / "secret.key"
    path.write_text("# comment\n\nnot-a-key-but-maybe-a-secret\n")
    with pytest.raises(StoreKeyError) as caught:
        read_key_file(path)
    assert "line 3" in str(caught.value)
    assert "not-a-key-but-maybe-a-secret" not in str(caught.value)
    assert read_key_file(tmp_path / "absent.key") is None


def test_a_world_readable_key_file_is_tightened(tmp_path: Path) -> None:
    from agent.store.encryption import StoreKey, read_key_file, write_key_file

    path = tmp_path / "secret.key"
    write_key_file(path, [StoreKey.generate()])
    assert mode(path) == 0o600
    path.chmod(0o644)
    ring = read_key_file(path)
    assert ring is not None
    assert mode(path) == 0o600
    assert ring.primary.line() not in repr(ring.primary)


def test_a_rotation_stopped_at_any_step_loses_no_credential(
    sqlite_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.store import encryption

    key_file = tmp_path / "secret.key"
    ring = encryption.open_key_ring(key_file, sqlite_store.engine)
    _add(sqlite_store, ring)
    old_id = ring.primary.id

    def crash(engine: Any, ring: Any) -> int:
        raise RuntimeError("power cut during the re-encryption")

    monkeypatch.setattr(encryption, "reseal", crash)
    with pytest.raises(RuntimeError):
        encryption.rotate_key(key_file, sqlite_store.engine)
    monkeypatch.undo()
    # The key file holds the new key and the old one: the store still decrypts.
    after_crash = encryption.read_key_file(key_file)
    assert after_crash is not None
    assert len(after_crash.keys) == 2
    assert after_crash.keys[1].id == old_id
    assert _credentials(sqlite_store, after_crash).password == PASSWORD

    rotation = encryption.rotate_key(key_file, sqlite_store.engine)
    assert rotation.resealed == 1
    assert old_id in rotation.dropped
    final = encryption.read_key_file(key_file)
    assert final is not None
    assert [key.id for key in final.keys] == [rotation.new_key]
    assert _credentials(sqlite_store, final).password == PASSWORD
    with pytest.raises(encryption.StoreKeyError, match="does not hold key"):
        _credentials(sqlite_store, ring)


def test_reset_forgets_only_the_credentials_no_key_decrypts(
    sqlite_store: Any, tmp_path: Path
) -> None:
    from agent.store import encryption
    from agent.store.access import StoreAccess
    from agent.store.elements import Credentials

    lost = tmp_path / "lost.key"
    lost_ring = encryption.open_key_ring(lost, sqlite_store.engine)
    _add(sqlite_store, lost_ring)
    key_file = tmp_path / "secret.key"
    ring = encryption.KeyRing([encryption.StoreKey.generate()], key_file)
    encryption.write_key_file(key_file, ring.keys)
    StoreAccess(sqlite_store.engine).elements.add(
        "cm2",
        "call-server",
        "http://127.0.0.1:9",
        "http",
        0,
        Credentials("admin", "other"),
        ring=ring,
    )
    assert encryption.reset_key(key_file, sqlite_store.engine) == ["cm1"]
    kept = StoreAccess(sqlite_store.engine).elements.get("cm2")
    assert StoreAccess(sqlite_store.engine).elements.credentials(kept.id, ring) == Credentials(
        "admin", "other"
    )
    assert _credentials(sqlite_store, ring) is None
    encryption.open_key_ring(key_file, sqlite_store.engine)


def test_a_missing_key_file_with_encrypted_credentials_is_refused_and_nothing_changes(
    sqlite_store: Any, tmp_path: Path
) -> None:
    from agent.store import encryption

    key_file = tmp_path / "secret.key"
    ring = encryption.open_key_ring(key_file, sqlite_store.engine)
    _add(sqlite_store, ring)
    key_file.unlink()
    with pytest.raises(encryption.StoreKeyError, match="does not exist"):
        encryption.open_key_ring(key_file, sqlite_store.engine)
    assert not key_file.exists()
    other = tmp_path / "other.key"
    encryption.write_key_file(other, [encryption.StoreKey.generate()])
    with pytest.raises(encryption.StoreKeyError, match="cm1"):
        encryption.open_key_ring(other, sqlite_store.engine)
    assert _credentials(sqlite_store, ring).password == PASSWORD


# ------------------------------------------------------------------ upgrade from clear rows
LEGACY_USERNAME = "legacy-operator-7"


def _store_at_0004_with_clear_credentials(url: str, secure_delete: str = "") -> Any:
    """A store as release 0004 left it; on SQLite, with ``secure_delete`` forced.

    Debian builds SQLite with secure_delete on, upstream off: forcing it on every
    connection makes the test mean the same on both.
    """
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import event, text

    from agent.store.database import MIGRATIONS, Store

    store = Store(url)

    @event.listens_for(store.engine, "connect")
    def _forced(dbapi_connection: Any, record: Any) -> None:
        if secure_delete:
            dbapi_connection.execute(f"PRAGMA secure_delete={secure_delete}")

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        conn.execute(
            text(
                "INSERT INTO elements (id, name, type, address, connector, interval, "
                "sync_state, cursor, epoch, software_version, agent_version, last_init_ok, "
                "generation, created_at) VALUES (1, 'cm1', 'call-server', "
                "'http://127.0.0.1:9', 'http', 0, 'ok', 0, '', '', '', :ok, 0, "
                "'2026-01-01 00:00:00.000000')"
            ),
            {"ok": True},
        )
        # 0004 kept credentials in the clear.
        conn.execute(
            text(
                "INSERT INTO element_credentials (element_id, username, password) "
                "VALUES (1, :username, :password)"
            ),
            {"username": LEGACY_USERNAME, "password": PASSWORD},
        )
    if secure_delete:
        with store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return store


def _secrets_in(directory: Path) -> dict[str, list[str]]:
    return {
        needle: files_holding(directory, needle.encode())
        for needle in (PASSWORD, LEGACY_USERNAME)
        if files_holding(directory, needle.encode())
    }


@pytest.mark.parametrize("secure_delete", ["OFF", "ON"])
def test_an_upgrade_from_clear_credentials_leaves_no_clear_copy_in_the_sqlite_files(
    tmp_path: Path, secure_delete: str
) -> None:
    from agent.store.access import StoreAccess
    from agent.store.elements import Credentials
    from agent.store.encryption import open_key_ring

    data = tmp_path / "data"
    data.mkdir()
    store = _store_at_0004_with_clear_credentials(
        f"sqlite:///{data / 'provsync.db'}", secure_delete
    )
    assert _secrets_in(data), "the clear values are in the file before the upgrade"
    store.open()  # the agent's start: migration 0005 (a table copy), then the key ring
    try:
        ring = open_key_ring(tmp_path / "secret.key", store.engine)
        assert _secrets_in(data) == {}, "while the agent runs (store file and its WAL)"
        assert StoreAccess(store.engine).elements.credentials(1, ring) == Credentials(
            LEGACY_USERNAME, PASSWORD
        )
        # The reseal leaves every pooled connection's secure_delete as it found it.
        idle = store.engine.pool.checkedin()  # type: ignore[attr-defined]
        conns = [store.engine.connect() for _ in range(idle)]
        try:
            values = {c.exec_driver_sql("PRAGMA secure_delete").scalar() for c in conns}
        finally:
            for conn in conns:
                conn.close()
        assert values == {1 if secure_delete == "ON" else 0}
    finally:
        store.close()
    assert _secrets_in(data) == {}, "after the agent stopped"


def test_credentials_removed_before_the_upgrade_leave_no_clear_copy_either(
    tmp_path: Path,
) -> None:
    from sqlalchemy import text

    from agent.store.encryption import open_key_ring

    data = tmp_path / "data"
    data.mkdir()
    store = _store_at_0004_with_clear_credentials(f"sqlite:///{data / 'provsync.db'}", "OFF")
    # Removed under 0004: no clear row is left to encrypt, but its bytes stay in the page.
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM element_credentials"))
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    assert _secrets_in(data)
    store.open()
    try:
        open_key_ring(tmp_path / "secret.key", store.engine)
        assert _secrets_in(data) == {}
    finally:
        store.close()
    assert _secrets_in(data) == {}


def pg_table_file(url: str, table: str) -> bytes:
    """The bytes of ``table``'s file on the server's disk (the server is on this host)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # dirty buffers to the file
        row = conn.execute(
            "SELECT current_setting('data_directory'), pg_relation_filepath(%s)", (table,)
        ).fetchone()
    assert row is not None
    return (Path(row[0]) / row[1]).read_bytes()


@pytest.mark.postgres
def test_an_upgrade_from_clear_credentials_leaves_no_dead_clear_row_on_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    from agent.store.access import StoreAccess
    from agent.store.elements import Credentials
    from agent.store.encryption import open_key_ring

    store = _store_at_0004_with_clear_credentials(pg_url)
    assert PASSWORD.encode() in pg_table_file(pg_url, "element_credentials")
    store.open()
    try:
        ring = open_key_ring(tmp_path / "secret.key", store.engine)
        assert StoreAccess(store.engine).elements.credentials(1, ring) == Credentials(
            LEGACY_USERNAME, PASSWORD
        )
        # The encrypting UPDATE leaves the clear row version dead in the page until a
        # VACUUM; VACUUM FULL writes the table to a new file.
        raw = pg_table_file(pg_url, "element_credentials")
        assert PASSWORD.encode() not in raw
        assert LEGACY_USERNAME.encode() not in raw
    finally:
        store.close()


@pytest.mark.postgres
def test_the_rewrite_waits_for_a_transaction_that_still_sees_the_clear_row(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction of the same database whose snapshot still sees the clear row version
    (an autovacuum's ANALYZE, another agent's read) makes VACUUM FULL copy it into the
    new file: the rewrite is repeated once that transaction has ended."""
    import time

    import psycopg

    from agent.store import scrub
    from agent.store.encryption import open_key_ring

    store = _store_at_0004_with_clear_credentials(pg_url)
    reader = psycopg.connect(pg_url, autocommit=True)
    # The snapshot is taken before the encryption's UPDATE: the clear row stays visible.
    reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    reader.execute("SELECT 1").fetchone()  # no lock on a table the migration alters
    waits: list[float] = []

    def wait(seconds: float) -> None:
        # The first wait between rewrites: the reader ends meanwhile. The waits are kept:
        # on a loaded server another transaction (an autovacuum ANALYZE) may still hold
        # the row a moment longer.
        if not waits:
            reader.execute("ROLLBACK")
        waits.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(scrub, "pause", wait)
    store.open()
    try:
        open_key_ring(tmp_path / "secret.key", store.engine)
        assert waits, "the first rewrite copied the clear row: it is done again"
        raw = pg_table_file(pg_url, "element_credentials")
        assert PASSWORD.encode() not in raw
        assert LEGACY_USERNAME.encode() not in raw
    finally:
        reader.close()
        store.close()
