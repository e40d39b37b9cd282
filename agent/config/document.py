"""The complete configuration with every default that ``config init`` writes."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from agent.config.exporters import ExporterSettings, FileExporterSettings
from agent.config.sections import AgentSettings, ApiSettings
from agent.config.settings import Settings


def default_document(*, token: str | None = None, data_dir: str = "var") -> dict[str, Any]:
    """A complete configuration with every default, as written by ``config init``."""
    settings = Settings(
        agent=AgentSettings(data_dir=Path(data_dir)),
        api=ApiSettings(token=token if token is not None else secrets.token_urlsafe(32)),
        exporters=ExporterSettings(
            file=(FileExporterSettings(path=Path("notifications.jsonl"), name="jsonl"),)
        ),
    )
    document = settings.model_dump(mode="json", exclude={"source"})
    # Secrets dump as "**********"; the example community is written in the clear.
    document["snmp"]["communities"] = [{"name": "public"}]
    document["alarm_types"] = [
        {
            "id": "site-ups-on-battery",
            "name": "UPS On Battery",
            "kind": "alarm",
            "severity": "major",
            "event_type": "equipmentAlarm",
            "probable_cause": "powerProblem",
            "description": "Example of a site alarm type raised by a local script.",
            "clear_instructions": "Restore mains power.",
            "resolution": "",
        }
    ]
    result: dict[str, Any] = _drop_none(document)
    return result


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value
