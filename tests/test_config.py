"""Configuration: defaults, the shipped example, config init/check and clear errors."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import tomli_w

from agent.config import (
    Settings,
    default_document,
    find_config,
    load_settings,
    parse_address,
    parse_duration,
    settings_from_dict,
)
from agent.errors import ConfigError
from tests.conftest import BIN

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "etc" / "provsync.toml"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "provsync"), *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_example_config_is_valid_and_documents_the_defaults() -> None:
    example = load_settings(EXAMPLE)
    defaults = Settings()
    # The example shows every default; only the site alarm type example is extra.
    for section in ("agent", "store", "api", "retention"):
        assert getattr(example, section) == getattr(defaults, section), section
    assert example.exporters.backlog_threshold == defaults.exporters.backlog_threshold
    assert [t.id for t in example.alarm_types] == ["site-ups-on-battery"]


def test_example_config_names_every_key() -> None:
    text = EXAMPLE.read_text()
    for section, model in Settings.model_fields.items():
        if section in {"source", "alarm_types"}:
            continue
        sub = model.annotation
        assert f"[{section}]" in text, section
        for key, field in sub.model_fields.items():  # type: ignore[union-attr]
            if key == "agent_log":
                assert "[syslog.agent_log]" in text
                continue
            if key in {"file", "communities", "users", "targets", "collectors"}:
                assert f"[[{section}.{key}]]" in text, f"{section}.{key} is not documented"
                # Array-of-table entries document their keys, some commented out.
                entry = field.annotation.__args__[0]  # tuple[Model, ...]
                for inner in entry.model_fields:
                    assert re.search(rf"\n(# )?{inner} = ", text), f"{section}.{key}.{inner}"
                continue
            assert f"\n{key} = " in text, f"{section}.{key} is not documented"


def test_default_document_round_trips() -> None:
    document = default_document(token="abc")
    settings = settings_from_dict(tomllib.loads(tomli_w.dumps(document)))
    assert settings.api.token == "abc"
    assert settings.agent.shutdown_timeout == 10.0
    assert settings.exporters.file[0].path == Path("notifications.jsonl")


def test_unknown_key_names_file_and_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[agent]\ndata_dir = "var"\nlog_levle = "INFO"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(path) in str(info.value)
    assert "agent.log_levle" in str(info.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[api]\nlisten = "localhost"\n', "api.listen"),
        ('[api]\nlisten = "127.0.0.1:99999"\n', "out of range"),
        ("[store]\nbatch_max = 0\n", "store.batch_max"),
        ('[store]\nbatch_max = "many"\n', "valid integer"),
        ('[agent]\nshutdown_timeout = "soon"\n', "duration"),
        ('[agent]\nlog_level = "LOUD"\n', "agent.log_level"),
        ("[[exporters.file]]\nmax_bytes = 5000\n", "exporters.file[0].path"),
        ('[[exporters.file]]\npath = "a"\nmin_severity = "bad"\n', "min_severity"),
        ('[[alarm_types]]\nid = "sync-failed"\nname = "x"\n', "built-in"),
        ('[[alarm_types]]\nid = "Bad Id"\nname = "x"\n', "alarm_types[0].id"),
        ('[[alarm_types]]\nid = "a"\nname = "x"\nseverity = "cleared"\n', "cleared"),
        (
            '[[alarm_types]]\nid = "a"\nname = "x"\n[[alarm_types]]\nid = "a"\nname = "y"\n',
            "unique",
        ),
        ("agent = 3\n", "agent"),
        (
            '[[exporters.file]]\npath = "a"\nname = "noc"\n'
            '[[syslog.collectors]]\naddress = "127.0.0.1:514"\nname = "noc"\n',
            "unique",
        ),
        ("[agent\n", "not valid TOML"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)


def test_errors_never_echo_secrets(tmp_path: Path) -> None:
    path = tmp_path / "secret.toml"
    path.write_text(
        "[api]\ntoken = 12345678\n"
        '[[snmp.users]]\nname = "u"\nauth_key = 98765432\npriv_key = "short"\n'
        "[[snmp.communities]]\nname = 4242\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert "api.token" in message
    assert "snmp.users[0].auth_key" in message
    for secret in ("12345678", "98765432", "short", "4242"):
        assert secret not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_settings(tmp_path / "nope.toml")


def test_durations_and_addresses() -> None:
    assert parse_duration("500ms") == 0.5
    assert parse_duration("5m") == 300
    assert parse_duration("24h") == 86400
    assert parse_duration(7) == 7
    assert parse_address("[::1]:8163") == ("::1", 8163)
    assert parse_address("host.example:1161") == ("host.example", 1161)
    with pytest.raises(ValueError, match="duration"):
        parse_duration(True)


def test_config_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROVSYNC_CONFIG", raising=False)
    assert find_config(None) is None or find_config(None) == Path("/etc/provsync/provsync.toml")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "provsync.toml").write_text("")
    assert find_config(None) == Path("etc/provsync.toml")
    monkeypatch.setenv("PROVSYNC_CONFIG", "/x.toml")
    assert find_config(None) == Path("/x.toml")
    assert find_config(Path("given.toml")) == Path("given.toml")


def test_data_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVSYNC_DATA_DIR", str(tmp_path / "elsewhere"))
    assert load_settings(EXAMPLE).data_dir == tmp_path / "elsewhere"


# ---------------------------------------------------------------- through the CLI
def test_cli_check_ok() -> None:
    result = run_cli("config", "check", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_cli_check_unknown_key_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('[api]\nlisten = "127.0.0.1:8163"\ntokn = "x"\n')
    result = run_cli("config", "check", str(path))
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "api.tokn" in result.stderr


def test_cli_bad_config_for_any_command_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("[agnet]\n")
    result = run_cli("--config", str(path), "status")
    assert result.returncode == 2
    assert "unknown key 'agnet'" in result.stderr


def test_cli_init_writes_a_valid_private_file_with_a_fresh_token(tmp_path: Path) -> None:
    first, second = tmp_path / "a.toml", tmp_path / "b.toml"
    assert run_cli("config", "init", "--out", str(first)).returncode == 0
    assert run_cli("config", "init", "--out", str(second)).returncode == 0
    assert first.stat().st_mode & 0o077 == 0
    token_a = load_settings(first).api.token
    token_b = load_settings(second).api.token
    assert len(token_a) >= 32
    assert token_a != token_b
    again = run_cli("config", "init", "--out", str(first))
    assert again.returncode == 1
    assert "--force" in again.stderr
    assert run_cli("config", "check", str(first)).returncode == 0


def test_cli_init_to_stdout_parses() -> None:
    result = run_cli("config", "init")
    assert result.returncode == 0
    data = tomllib.loads(result.stdout)
    assert data["api"]["listen"] == "127.0.0.1:8163"
    assert data["agent"]["shutdown_timeout"] == "10s"


def test_cli_bad_arguments_exit_2() -> None:
    result = run_cli("alarms", "list", "--limit", "zero")
    assert result.returncode == 2
