"""What the agent builds from its settings before its components start: the site's alarm
catalog, the tokens, the host name, the exporters and the event loop.

Kept apart from the lifecycle in agent.app so that the start order reads on its own.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from loguru import logger

from agent.alarms.catalog import AlarmType, Catalog
from agent.alarms.manager import AlarmManager
from agent.config import Settings, read_token_file
from agent.errors import ConfigError
from agent.export.base import Exporter
from agent.export.jsonfile import FileExporter
from agent.export.snmp.service import SnmpService
from agent.export.snmp.targets import SnmpTargetExporter
from agent.export.syslog.exporter import SyslogExporter, make_formatter


def site_catalog(settings: Settings) -> Catalog:
    return Catalog(
        AlarmType(
            id=t.id,
            name=t.name,
            kind=t.kind,
            severity=t.severity,
            event_type=t.event_type,
            probable_cause=t.probable_cause,
            description=t.description,
            clear_instructions=t.clear_instructions,
            resolution=t.resolution,
            builtin=False,
        )
        for t in settings.alarm_types
    )


def resolve_token(settings: Settings) -> str:
    """The configured token, else the one in ``<data_dir>/api.token`` (made on first start)."""
    return _token(settings.api.token, settings.token_file, "an API")


def resolve_element_token(settings: Settings) -> str:
    """The elements' token: [sharing] element_token, else ``<data_dir>/element.token``."""
    return _token(settings.sharing.element_token, settings.element_token_file, "an element")


def _token(configured: str, path: Path, what: str) -> str:
    if configured:
        return configured
    existing = read_token_file(path)
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    logger.info("generated {} token in {}", what, path)
    return token


def agent_hostname(settings: Settings) -> str:
    return settings.agent.hostname or socket.getfqdn()


def build_exporters(
    settings: Settings, manager: AlarmManager, host: str, snmp: SnmpService | None
) -> list[Exporter]:
    exporters: list[Exporter] = []
    for target in settings.exporters.file:
        path = settings.exporter_path(target.path)
        exporters.append(FileExporter(manager, settings.exporters, target, path, host))
    if settings.syslog.collectors:
        formatter = make_formatter(settings, host)
        for collector in settings.syslog.collectors:
            exporters.append(SyslogExporter(manager, settings.exporters, collector, formatter))
    if snmp is not None:
        for index, snmp_target in enumerate(settings.snmp.targets):
            exporters.append(
                SnmpTargetExporter(manager, settings.exporters, snmp_target, snmp, index)
            )
    return exporters


LoopChoice = Literal["auto", "uvloop", "asyncio"]


def loop_factory(choice: LoopChoice) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The event loop ``[agent] event_loop`` names, and its factory.

    ``auto``: uvloop when it is installed (it is not on every platform), else the
    standard library's loop. Everything of the agent runs in that one loop: the control
    API, the SNMP listeners, the exporters' sockets; the writer thread hands results to
    it with ``call_soon_threadsafe``, which both loops provide.

    Raises:
        ConfigError: ``uvloop`` asked for and not installed.
    """
    if choice != "asyncio" and importlib.util.find_spec("uvloop") is not None:
        import uvloop

        return "uvloop", uvloop.new_event_loop
    if choice == "uvloop":
        raise ConfigError("[agent] event_loop is uvloop, which is not installed")
    return "asyncio", asyncio.new_event_loop
