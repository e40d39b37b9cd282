"""Connector drivers by name, from the ``provsync.connectors`` entry-point group.

Built-in drivers are registered the same way (see pyproject.toml), so a plugin looks
exactly like ``http``.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Protocol

from agent.connectors.base import Connector, Credentials
from agent.errors import ConfigError
from agent.store.elements import Element

GROUP = "provsync.connectors"


def available() -> dict[str, str]:
    """Driver name -> the object it points to."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def load(name: str) -> type[Connector]:
    for entry in entry_points(group=GROUP):
        if entry.name == name:
            try:
                driver = entry.load()
            except Exception as exc:
                raise ConfigError(
                    f"connector {name!r} ({entry.value}, group {GROUP}) failed to load: {exc}"
                ) from exc
            if not (isinstance(driver, type) and issubclass(driver, Connector)):
                raise ConfigError(
                    f"connector {name!r} ({entry.value}, group {GROUP}) is not a Connector"
                )
            return driver
    known = ", ".join(sorted(available())) or "none"
    raise ConfigError(f"no connector {name!r} in group {GROUP} (installed: {known})")


class ConnectorFactory(Protocol):
    """How a component gets a connector for a stored element: :func:`connect` in the
    agent, a fake element in tests. Credentials are read (and decrypted) by the caller."""

    def __call__(
        self, element: Element, credentials: Credentials | None, *, timeout: float, retries: int
    ) -> Connector: ...


def connect(
    element: Element, credentials: Credentials | None, *, timeout: float, retries: int
) -> Connector:
    """A connector for a stored element (its driver, address and credentials)."""
    driver = load(element.connector)
    return driver(element.address, credentials, timeout=timeout, retries=retries)
