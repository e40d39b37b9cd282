"""Configuration: defaults, the shipped example, config init/check and clear errors."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import tomli_w
from pydantic import BaseModel, TypeAdapter, ValidationError

from agent.config import (
    Duration,
    Settings,
    default_document,
    find_config,
    load_settings,
    parse_address,
    parse_duration,
    settings_from_dict,
    within,
)
from agent.errors import ConfigError
from agent.syslog_facilities import FACILITIES
from tests import forked

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "etc" / "provsync.toml"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return forked.run(list(args), env=dict(os.environ), cwd=cwd or Path.cwd())


def test_example_config_is_valid_and_documents_the_defaults() -> None:
    example = load_settings(EXAMPLE)
    defaults = Settings()
    # The example shows every default; only the site alarm type example is extra.
    for section in ("agent", "store", "api", "retention", "cluster"):
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
        ("[retention]\nevent_days = inf\n", "retention.event_days"),
        ("[retention]\ncleared_alarm_days = 1e300\n", "retention.cleared_alarm_days"),
        ("[retention]\nnotification_log_days = nan\n", "retention.notification_log_days"),
        # Counts and sizes that reach SQL or a comparison with one: past 2**63 SQLite
        # raised OverflowError at every purge and the log was never purged.
        ("[retention]\nmax_backlog = 1e20\n", "retention.max_backlog"),
        ("[retention]\nmax_backlog = 100000000000000000000\n", "retention.max_backlog"),
        ("[retention]\nnotification_log_max = 1e20\n", "retention.notification_log_max"),
        ("[retention]\nnotification_log_max = 1000000001\n", "retention.notification_log_max"),
        ("[exporters]\nbacklog_threshold = 1000000001\n", "exporters.backlog_threshold"),
        (
            '[[exporters.file]]\npath = "a"\nmax_bytes = 1e20\n',
            "exporters.file[0].max_bytes",
        ),
        ("[sync]\nescalate_after_changes = 1000000001\n", "sync.escalate_after_changes"),
        ("[sharing]\ndistribution_cap = 1000000001\n", "sharing.distribution_cap"),
        ("[sharing]\nerrors_major_at = 1000000001\n", "sharing.errors_major_at"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert needle in str(info.value)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- duration ranges
# Where each duration key sits in a file, with what its table needs to be valid.
DURATION_KEYS = {
    "agent.shutdown_timeout": "[agent]\nshutdown_timeout = {}\n",
    "retention.purge_interval": "[retention]\npurge_interval = {}\n",
    "exporters.retry_initial": '[exporters]\nretry_initial = {}\nretry_max = "1d"\n',
    "exporters.retry_max": '[exporters]\nretry_initial = "10ms"\nretry_max = {}\n',
    "exporters.poll_interval": "[exporters]\npoll_interval = {}\n",
    "snmp.heartbeat_interval": "[snmp]\nheartbeat_interval = {}\n",
    "snmp.targets[0].timeout": (
        '[[snmp.targets]]\naddress = "127.0.0.1:162"\ncommunity = "c"\ntimeout = {}\n'
    ),
    "syslog.collectors[0].timeout": (
        '[[syslog.collectors]]\naddress = "127.0.0.1:514"\ntimeout = {}\n'
    ),
    "sync.incremental_interval": "[sync]\nincremental_interval = {}\n",
    "sync.timeout": "[sync]\ntimeout = {}\n",
    "sharing.retry_initial": '[sharing]\nretry_initial = {}\nretry_max = "1d"\n',
    "sharing.retry_max": '[sharing]\nretry_initial = "10ms"\nretry_max = {}\n',
    "sharing.keep_done": "[sharing]\nkeep_done = {}\n",
    "store.lock_check_interval": "[store]\nlock_check_interval = {}\n",
    "store.server_timeout": "[store]\nserver_timeout = {}\n",
    "exporters.deliver_timeout": "[exporters]\ndeliver_timeout = {}\n",
    "exporters.down_reminder_interval": "[exporters]\ndown_reminder_interval = {}\n",
    "retention.max_backlog_age": "[retention]\nmax_backlog_age = {}\n",
    "api.header_timeout": "[api]\nheader_timeout = {}\n",
    "cluster.poll_interval": "[cluster]\npoll_interval = {}\n",
    "cluster.heartbeat_interval": "[cluster]\nheartbeat_interval = {}\n",
    "cluster.member_timeout": "[cluster]\nmember_timeout = {}\n",
    "cluster.forget_after": "[cluster]\nforget_after = {}\n",
}
# "0s" means "off" (no heartbeat, no recurring sync) or "not kept" for these alone.
ZERO_ALLOWED = {"snmp.heartbeat_interval", "sync.incremental_interval", "sharing.keep_done"}
# TOML values no duration accepts: not finite, negative, or far beyond any sane range.
NEVER = ("nan", "inf", "-inf", "-1", '"-1s"', '"4000d"', "1e300")


def _check(tmp_path: Path, text: str) -> str:
    path = tmp_path / "durations.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


@pytest.mark.parametrize("key", sorted(DURATION_KEYS))
@pytest.mark.parametrize("value", NEVER)
def test_durations_out_of_any_range_are_named(tmp_path: Path, key: str, value: str) -> None:
    message = _check(tmp_path, DURATION_KEYS[key].format(value))
    assert f"{tmp_path / 'durations.toml'}: {key}: " in message, message
    assert "\n" not in message, "one line for one bad key"


@pytest.mark.parametrize("key", sorted(DURATION_KEYS.keys() - ZERO_ALLOWED))
@pytest.mark.parametrize("value", ['"0s"', "0", "0.0", '"0ms"', '"1ms"'])
def test_zero_and_near_zero_durations_are_refused(tmp_path: Path, key: str, value: str) -> None:
    # Zero here made the agent spin: retry_initial = "0s" and a dead collector gave
    # 5,000 connects a second.
    message = _check(tmp_path, DURATION_KEYS[key].format(value))
    assert f": {key}: must be " in message, message


@pytest.mark.parametrize("key", sorted(ZERO_ALLOWED))
def test_zero_keeps_its_documented_meaning(tmp_path: Path, key: str) -> None:
    path = tmp_path / "zero.toml"
    path.write_text(DURATION_KEYS[key].format('"0s"'))
    settings = load_settings(path)
    section, name = key.split(".")
    assert getattr(getattr(settings, section), name) == 0.0


@pytest.mark.parametrize(
    ("key", "low", "too_low", "high", "too_high"),
    [
        ("exporters.retry_initial", '"10ms"', '"9ms"', '"1h"', '"61m"'),
        ("exporters.poll_interval", '"10ms"', '"9ms"', '"1h"', '"61m"'),
        ("retention.purge_interval", '"1s"', '"999ms"', '"7d"', '"8d"'),
        ("snmp.heartbeat_interval", '"100ms"', '"99ms"', '"1d"', '"25h"'),
        ("sync.incremental_interval", '"1m"', '"59s"', '"366d"', '"367d"'),
        ("agent.shutdown_timeout", '"100ms"', '"99ms"', '"1h"', '"61m"'),
    ],
)
def test_duration_bounds(
    tmp_path: Path, key: str, low: str, too_low: str, high: str, too_high: str
) -> None:
    template = DURATION_KEYS[key]
    for good in (low, high):
        path = tmp_path / "good.toml"
        path.write_text(template.format(good))
        load_settings(path)
    for bad in (too_low, too_high):
        assert f": {key}: must be " in _check(tmp_path, template.format(bad))


@pytest.mark.parametrize("section", ["exporters", "sharing"])
def test_retry_max_below_retry_initial_is_refused(tmp_path: Path, section: str) -> None:
    message = _check(tmp_path, f'[{section}]\nretry_initial = "10s"\nretry_max = "5s"\n')
    assert f"{tmp_path / 'durations.toml'}: {section}: " in message
    assert "retry_max" in message
    assert "retry_initial" in message


def _duration_fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))[0]
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            yield from _duration_fields(inner, f"{prefix}{name}.")
        elif any(getattr(m, "func", None) is parse_duration for m in field.metadata):
            yield f"{prefix}{name}", TypeAdapter(Annotated[float, *field.metadata])


def _without_own_range(model: type[BaseModel]) -> list[str]:
    """Duration keys that take what only the base Duration refuses: each key needs its own
    within() range, whose floor (10ms at least) refuses "1ms", and "0s" unless it means off.
    """
    unbounded = []
    for key, adapter in _duration_fields(model):
        for value in ("1ms", *(() if key in ZERO_ALLOWED else ("0s",))):
            try:
                adapter.validate_python(value)
            except ValidationError:
                continue
            unbounded.append(f"{key} = {value}")
    return unbounded


def test_every_duration_key_has_a_bounded_range() -> None:
    # Keys added later get the same guarantee: never NaN, infinite, negative or huge...
    fields = dict(_duration_fields(Settings))
    assert {key.replace("[0]", "") for key in DURATION_KEYS} == set(fields), (
        "DURATION_KEYS must list every duration key"
    )
    for key, adapter in fields.items():
        for value in (float("nan"), float("inf"), -1.0, "-1s", "4000d", 1e300):
            with pytest.raises(ValidationError):
                adapter.validate_python(value)
            assert key
    # ...and a range of its own, not only the base Duration's 0 to ten years.
    assert _without_own_range(Settings) == []


def test_a_duration_key_without_its_own_range_is_found() -> None:
    class Careless(BaseModel):
        ranged: Annotated[Duration, within("10ms", "1h")] = 1.0
        bare: Duration = 1.0

    assert _without_own_range(Careless) == ["bare = 1ms", "bare = 0s"]


def test_parse_duration_refuses_what_is_not_a_finite_duration() -> None:
    for value in (float("nan"), float("inf"), float("-inf"), -0.5, "4000d"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(value)


def test_cli_check_names_a_spinning_duration(tmp_path: Path) -> None:
    path = tmp_path / "spin.toml"
    path.write_text('[exporters]\nretry_initial = "0s"\npoll_interval = nan\n')
    result = run_cli("config", "check", str(path))
    assert result.returncode == 2
    assert f"{path}: exporters.retry_initial: " in result.stderr
    assert f"{path}: exporters.poll_interval: " in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- files that are not TOML
@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"a = " + b"[" * 100_000, "nested too deeply"),
        (b"a = " + b"{b = " * 5_000, "nested too deeply"),
        (b"\xff\xfe[agent]\n", "not UTF-8"),
        (b"#" * (2 << 20), "larger than"),
    ],
)
def test_files_that_are_not_toml_are_one_line_errors(
    tmp_path: Path, content: bytes, needle: str
) -> None:
    path = tmp_path / "hostile.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert needle in message
    assert "\n" not in message
    result = run_cli("config", "check", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {message}"]


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


# ---------------------------------------------------------------- syslog conformance
def test_probable_cause_outside_the_iana_list_is_named_one_line_each(tmp_path: Path) -> None:
    # RFC 5674 section 3.2: probableCause is an IANAItuProbableCause label.
    path = tmp_path / "causes.toml"
    path.write_text(
        '[[alarm_types]]\nid = "a"\nname = "A"\nprobable_cause = "powerProblem"\n'
        '[[alarm_types]]\nid = "b"\nname = "B"\n'
        '[[alarm_types]]\nid = "c"\nname = "C"\nprobable_cause = "cabinetDoorOpen"\n'
        '[[alarm_types]]\nid = "d"\nname = "D"\nprobable_cause = "powerproblem"\n'
    )
    result = run_cli("config", "check", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert f"{path}: alarm_types[2].probable_cause: not an IANAItuProbableCause" in lines[0]
    assert "(got 'cabinetDoorOpen')" in lines[0]
    assert "alarm_types[3].probable_cause" in lines[1]
    assert "did you mean 'powerProblem'?" in lines[1]
    # The agent refuses to start on it, the same way.
    started = run_cli("run", "--config", str(path))
    assert started.returncode == 2
    assert "alarm_types[2].probable_cause" in started.stderr


def test_builtin_and_example_types_use_iana_labels() -> None:
    from agent.alarms.catalog import BUILTIN_TYPES
    from agent.alarms.probable_cause import PROBABLE_CAUSES

    assert {t.probable_cause for t in BUILTIN_TYPES} <= PROBABLE_CAUSES.keys()
    assert load_settings(EXAMPLE).alarm_types[0].probable_cause in PROBABLE_CAUSES


def test_lf_framing_is_refused_for_tls_and_kept_for_tcp(tmp_path: Path) -> None:
    tls = (
        '[[syslog.collectors]]\naddress = "127.0.0.1:6514"\ntransport = "tls"\n'
        'ca_file = "ca.pem"\nframing = "lf"\n'
    )
    message = _check(tmp_path, tls)
    assert ": syslog.collectors[0].framing: TLS requires octet-counting framing" in message
    assert "RFC 5425 section 4.3" in message
    tcp = settings_from_dict(
        {
            "syslog": {
                "collectors": [{"address": "127.0.0.1:514", "transport": "tcp", "framing": "lf"}]
            }
        }
    )
    assert tcp.syslog.collectors[0].framing == "lf"


def test_udp_message_limit_is_its_own_setting() -> None:
    defaults = Settings().syslog
    assert (defaults.udp_max_message_size, defaults.max_message_size) == (2048, 8192)
    assert load_settings(EXAMPLE).syslog.udp_max_message_size == 2048
    for good in (480, 1180, 65000):
        assert settings_from_dict({"syslog": {"udp_max_message_size": good}})
    for bad in (479, 0, 65001):
        with pytest.raises(ConfigError) as info:
            settings_from_dict({"syslog": {"udp_max_message_size": bad}})
        text = str(info.value)
        assert "syslog.udp_max_message_size: must be from 480" in text
        assert f"(got {bad})" in text


def test_a_lowered_max_message_size_still_bounds_udp() -> None:
    """Configs from before udp_max_message_size kept UDP under their MTU with
    max_message_size: that lower limit still holds for UDP unless the new key is set."""
    lowered = settings_from_dict({"syslog": {"max_message_size": 1180}}).syslog
    assert lowered.udp_max_message_size == 1180
    both = {"max_message_size": 1180, "udp_max_message_size": 2048}
    assert settings_from_dict({"syslog": both}).syslog.udp_max_message_size == 2048
    assert (
        settings_from_dict({"syslog": {"max_message_size": 4096}}).syslog.udp_max_message_size
        == 2048
    )


def test_syslog_facility_takes_the_rfc5424_names_and_refuses_others_naming_them() -> None:
    # The names are agent.syslog_facilities' table, the one the formatter turns into PRI.
    for name in FACILITIES:
        assert settings_from_dict({"syslog": {"facility": name}}).syslog.facility == name
    assert Settings().syslog.facility == "local0"
    for bad in ("local8", "LOCAL0", "", 16):
        with pytest.raises(ConfigError) as info:
            settings_from_dict({"syslog": {"facility": bad}})
        # One line naming the key and every accepted name, as when the field was a Literal.
        assert str(info.value).count("\n") == 0
        assert (
            "syslog.facility: Input should be 'kern', 'user', 'mail', 'daemon', 'auth', "
            "'syslog', 'lpr', 'news', 'uucp', 'cron', 'authpriv', 'ftp', 'ntp', 'audit', "
            "'alert', 'clock', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', "
            "'local6' or 'local7'"
        ) in str(info.value)


_TARGET = {"address": "127.0.0.1:162", "community": "public", "name": "noc"}
_USER = {"name": "ops", "auth_key": "k" * 12, "priv_key": "p" * 12}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"exporters": {"file": [{"path": "a", "name": "noc"}] * 2}}, "exporter names"),
        ({"snmp": {"targets": [_TARGET, _TARGET]}}, "SNMP target names"),
        (
            {"syslog": {"collectors": [{"address": "127.0.0.1:514", "name": "noc"}] * 2}},
            "syslog collector names",
        ),
        (
            {
                "exporters": {"file": [{"path": "a", "name": "noc"}]},
                "snmp": {"targets": [_TARGET]},
            },
            "export target names",
        ),
        ({"snmp": {"users": [{**_USER, "name": "noc"}] * 2}}, "SNMP user names"),
        ({"alarm_types": [{"id": "noc", "name": "x"}] * 2}, "alarm type ids"),
    ],
)
def test_a_repeated_name_is_refused_naming_it(data: dict[str, Any], message: str) -> None:
    # One check for every list whose names must differ (a target's cursor is kept under
    # its name): each refusal says which name is repeated.
    with pytest.raises(ConfigError) as info:
        settings_from_dict(data)
    assert f"{message} must be unique, repeated: noc" in str(info.value)
