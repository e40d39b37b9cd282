"""agent.errors: the one place provsync's errors are defined, and its drawn tree is right;
a missing sync job is JobNotFound, answered 404 by the control API with the job's words."""

from __future__ import annotations

import ast
import asyncio
import builtins
import inspect
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from agent import errors
from agent.api.app import Services, _status_of, create_app
from agent.errors import AlarmError, AlarmNotFound, JobNotFound, ProvsyncError
from agent.http_tls import client_context
from agent.store.access import StoreAccess
from agent.store.database import Store
from tests.conftest import TOKEN

AGENT = Path(errors.__file__).parent
OURS = {
    name: cls
    for name, cls in vars(errors).items()
    if inspect.isclass(cls) and issubclass(cls, ProvsyncError)
}
INDENT = 5
"""Columns from a class's name to its subclasses' names in the drawn tree."""


def _tree() -> dict[str, str | None]:
    """The class name to its parent's name, read from the tree in the module docstring."""
    doc = errors.__doc__ or ""
    drawn = doc.split("::", 1)[1].split("\n\n")[1]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []  # (column of the name, name), the current path
    for line in drawn.splitlines():
        match = re.search(r"\w", line)
        assert match, line
        column = match.start()
        name = line[column:].split()[0]
        while stack and stack[-1][0] >= column:
            stack.pop()
        if stack:
            assert column == stack[-1][0] + INDENT, f"{name} is drawn out of line"
        parents[name] = stack[-1][1] if stack else None
        stack.append((column, name))
    return parents


def test_the_drawn_tree_is_the_class_tree() -> None:
    drawn = _tree()
    assert set(drawn) == set(OURS), "every ProvsyncError is drawn, and only those"
    for name, cls in OURS.items():
        parent = cls.__bases__[0].__name__ if cls is not ProvsyncError else None
        assert drawn[name] == parent, f"{name} is drawn under {drawn[name]}, is a {parent}"


def test_every_error_says_what_it_means() -> None:
    for name, cls in OURS.items():
        own = vars(cls).get("__doc__")
        assert own, f"{name} has no docstring of its own"
        assert own.strip(), name


def _exception_classes() -> Iterator[tuple[str, str, list[str]]]:
    """(module, class, base names) of every class outside errors.py derived from an
    exception: a builtin one, one of agent.errors, or one found so far (two passes)."""
    found: dict[str, list[str]] = {}
    modules = sorted(p for p in AGENT.rglob("*.py") if p != Path(errors.__file__))
    trees = {p: ast.parse(p.read_text()) for p in modules}
    for _ in range(2):  # a subclass may come before its base in the file order
        for path, tree in trees.items():
            module = ".".join(path.relative_to(AGENT.parent).with_suffix("").parts)
            for node in ast.walk(tree):
                if not isinstance(node, ast.ClassDef):
                    continue
                bases = [ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases]
                if any(
                    b in OURS
                    or b in found
                    or (
                        isinstance(getattr(builtins, b, None), type)
                        and issubclass(getattr(builtins, b), BaseException)
                    )
                    for b in bases
                ):
                    found[node.name] = bases
                    yield module, node.name, bases


def test_errors_are_defined_in_errors_py_and_internal_signals_are_named_there() -> None:
    seen: set[tuple[str, str]] = set()
    for module, name, bases in _exception_classes():
        if (module, name) in seen:
            continue
        seen.add((module, name))
        assert not any(b in OURS for b in bases), f"{module}.{name} belongs in agent.errors"
        assert f"``{module}.{name}``" in (errors.__doc__ or ""), (
            f"{module}.{name} is an exception outside agent.errors: name it there as internal"
        )
    # The internal signals the docstring explains are still where it says.
    assert {("agent.sync.incremental", "Escalate"), ("agent.export.snmp.ber", "BerError")} <= seen


def test_moved_errors_are_provsync_errors() -> None:
    for name in ("SimulatorError", "Oversized", "SendError", "ApiError", "SyncStopped"):
        assert issubclass(OURS[name], ProvsyncError), name
    assert issubclass(OURS["SendError"], errors.ExportError)
    assert not issubclass(OURS["Oversized"], errors.ExportError)  # skipped, not retried
    assert issubclass(OURS["MalformedAnswer"], errors.ConnectorError)
    # Not an alarm error: a caller catching AlarmNotFound must not take a job for an alarm.
    assert not issubclass(JobNotFound, AlarmError)
    simulated = errors.SimulatorError(409, "exists", "user u1 exists")
    assert (simulated.status, simulated.error, str(simulated)) == (409, "exists", "user u1 exists")


# ------------------------------------------------------------------ over the control API
@pytest.fixture
def api(tmp_path: Path) -> Iterator[httpx.AsyncClient]:
    store = Store(f"sqlite:///{tmp_path / 'provsync.db'}")
    store.open()
    services = Services(
        manager=None,  # type: ignore[arg-type]  # the job and element routes do not use it
        token=TOKEN,
        started_at=datetime.now(UTC),
        store_url="sqlite://",
        store_id="test",
        store=StoreAccess(store.engine),
    )
    transport = httpx.ASGITransport(app=create_app(services))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        yield httpx.AsyncClient(
            transport=transport, base_url="http://agent", headers=headers, verify=client_context()
        )
    finally:
        store.close()


def test_a_missing_job_is_a_404_about_the_job(api: httpx.AsyncClient) -> None:
    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with api:
            return (
                await api.get("/api/v1/jobs/4711"),
                await api.get("/api/v1/elements/nope"),
                await api.get("/api/v1/jobs"),
            )

    job, element, jobs = asyncio.run(scenario())
    assert job.status_code == 404, job.text
    assert job.json() == {"error": "no job with id 4711"}
    assert "alarm" not in job.text
    assert element.status_code == 404, element.text
    assert element.json() == {"error": "no element named 'nope'"}
    assert (jobs.status_code, jobs.json()) == (200, [])


def test_the_api_maps_each_not_found_to_404() -> None:
    status = _status_of
    assert status(JobNotFound("no job with id 1")) == 404
    assert status(errors.ElementNotFound("no element named 'x'")) == 404
    assert status(AlarmNotFound("no alarm with id 1")) == 404
    assert status(errors.StoreError("down")) == 503
