"""Finding, reading and validating a configuration file.

Reads are bounded in size; every failure becomes a :class:`ConfigError` that names the
file, the key path and what was expected, with secrets never echoed back.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.config.settings import Settings
from agent.errors import ConfigError

ENV_CONFIG = "PROVSYNC_CONFIG"
ENV_DATA_DIR = "PROVSYNC_DATA_DIR"
SEARCH_PATHS = (Path("etc/provsync.toml"), Path("/etc/provsync/provsync.toml"))

CONFIG_MAX_BYTES = 1 << 20
"""A configuration file larger than this is refused before it is parsed."""


def _format_location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


_SECRET_KEYS = frozenset(
    {"token", "element_token", "auth_key", "priv_key", "community", "password"}
)


def _is_secret(loc: tuple[int | str, ...]) -> bool:
    return bool(_SECRET_KEYS.intersection(map(str, loc))) or "communities" in loc


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
        where = _format_location(loc)
        if error["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{where}'")
            continue
        message = error["msg"].removeprefix("Value error, ")
        got = error.get("input")
        hide = isinstance(got, dict | list) or "got " in message or _is_secret(loc)
        got_text = "" if hide else f" (got {got!r})"
        lines.append(f"{source}: {where}: {message}{got_text}")
    return "\n".join(lines)


def settings_from_dict(data: dict[str, Any], source: str = "<config>") -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            # Bounded: --config /dev/zero or a runaway file must not eat the memory.
            raw = handle.read(CONFIG_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a TOML file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > CONFIG_MAX_BYTES:
        raise ConfigError(f"{path}: larger than {CONFIG_MAX_BYTES // 1024} KiB, refused")
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.start}), TOML files are UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        # tomllib parses arrays and inline tables recursively.
        raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None


def load_settings(path: Path | None) -> Settings:
    """Read and validate ``path``; None gives the built-in defaults."""
    if path is None:
        settings = Settings()
    else:
        data = _read_toml(path)
        settings = settings_from_dict(data, str(path)).model_copy(update={"source": path})
    override = os.environ.get(ENV_DATA_DIR)
    if override:
        agent = settings.agent.model_copy(update={"data_dir": Path(override)})
        settings = settings.model_copy(update={"agent": agent})
    return settings


def read_token_file(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except (OSError, UnicodeDecodeError):
        # Missing, unreadable or not a file: as if there were none (the caller says what's next).
        return None


def find_config(explicit: Path | None) -> Path | None:
    """--config, then $PROVSYNC_CONFIG, then ./etc/provsync.toml, /etc/provsync/provsync.toml."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get(ENV_CONFIG)
    if from_env:
        return Path(from_env)
    for candidate in SEARCH_PATHS:
        if candidate.is_file():
            return candidate
    return None
