"""Every CLI error is one line on stderr with the documented exit status, never a traceback.

Exit status (README): 0 success, 1 refused by the agent / agent not running / a runtime
failure, 2 bad usage or bad configuration. Each case runs ``provsync`` as its own process
(tests/forked.py).
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest
import tomli_w

from tests import forked
from tests.conftest import free_port, free_udp_port


def provsync(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return forked.run(list(args), env=dict(os.environ), cwd=cwd or Path.cwd())


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, needle: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    # Agent runs log to stderr as well; the error itself is the one "error:" line, last.
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert lines[-1] == errors[0], result.stderr
    assert needle in errors[0], result.stderr
    return errors[0]


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain-file"
    path.write_text("not a directory\n")
    return path


# ---------------------------------------------------------------- config init --out
def test_init_into_a_path_below_a_file_is_bad_usage(a_file: Path) -> None:
    result = provsync("config", "init", "--out", str(a_file / "sub" / "provsync.toml"))
    assert_one_line(result, 2, f"{a_file} is not a directory")


def test_init_onto_a_directory_is_bad_usage(tmp_path: Path) -> None:
    result = provsync("config", "init", "--out", str(tmp_path), "--force")
    assert_one_line(result, 2, f"cannot write {tmp_path}: Is a directory")


def test_init_where_nothing_can_be_created_is_bad_usage() -> None:
    # /proc takes no new files, not even from root.
    result = provsync("config", "init", "--out", "/proc/provsync-test/provsync.toml")
    assert_one_line(result, 2, "cannot write /proc/provsync-test/provsync.toml")


def test_init_to_a_full_disk_is_a_runtime_failure() -> None:
    # Writing to /dev/full fails with ENOSPC, as a full file system does.
    result = provsync("config", "init", "--out", "/dev/full", "--force")
    assert_one_line(result, 1, "No space left on device")


def test_init_still_creates_missing_directories(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "provsync.toml"
    result = provsync("config", "init", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert out.is_file()


# ---------------------------------------------------------------- --config and friends
@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ("{tmp}", "is a directory"),
        ("{tmp}/missing.toml", "no such configuration file"),
        ("/dev/zero", "larger than"),
        ("{file}/x.toml", "cannot read"),
    ],
)
def test_unusable_config_files_are_bad_configuration(
    tmp_path: Path, a_file: Path, config: str, needle: str
) -> None:
    path = config.format(tmp=tmp_path, file=a_file)
    for command in (["status"], ["run"], ["config", "check", path]):
        result = provsync("--config", path, *command)
        assert_one_line(result, 2, needle)


def test_a_malformed_api_url_is_bad_usage(tmp_path: Path) -> None:
    config = tmp_path / "ok.toml"
    config.write_text("")
    result = provsync("--config", str(config), "--api-url", "http://[::1", "status")
    assert_one_line(result, 2, "--api-url")


def test_a_missing_password_file_is_bad_usage(tmp_path: Path) -> None:
    config = tmp_path / "ok.toml"
    config.write_text("")
    result = provsync(
        "--config",
        str(config),
        "elements",
        "add",
        "cs1",
        "--url",
        "http://127.0.0.1:9",
        "--password-file",
        str(tmp_path / "nope"),
    )
    assert_one_line(result, 2, f"cannot read {tmp_path / 'nope'}")


def test_the_cli_tolerates_a_token_path_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "var" / "api.token").mkdir(parents=True)
    config = tmp_path / "c.toml"
    config.write_text(
        f'[agent]\ndata_dir = "{tmp_path / "var"}"\n[api]\nlisten = "127.0.0.1:{free_port()}"\n'
    )
    assert_one_line(provsync("--config", str(config), "status"), 1, "not running")


# ---------------------------------------------------------------- run
@pytest.fixture
def agent_config(tmp_path: Path) -> Path:
    """A config on free ports whose data directory each test spoils its own way."""
    path = tmp_path / "provsync.toml"
    document = {
        "agent": {"data_dir": str(tmp_path / "var")},
        "api": {"listen": f"127.0.0.1:{free_port()}", "token": "t" * 32},
        "snmp": {"listen": [f"127.0.0.1:{free_udp_port()}"], "heartbeat_interval": "0s"},
    }
    path.write_text(tomli_w.dumps(document))
    return path


@pytest.mark.parametrize("below", ["", "deep/path"])
def test_run_with_a_data_dir_that_is_a_file_is_bad_usage(
    agent_config: Path, a_file: Path, below: str
) -> None:
    data_dir = a_file / below if below else a_file
    result = provsync("run", "--config", str(agent_config), "--data-dir", str(data_dir))
    assert_one_line(result, 2, f"data directory {data_dir}: {a_file} is not a directory")


def test_run_with_a_data_dir_that_cannot_be_created_is_bad_usage(agent_config: Path) -> None:
    result = provsync("run", "--config", str(agent_config), "--data-dir", "/proc/provsync/var")
    assert_one_line(result, 2, "data directory /proc/provsync/var: cannot create it: ")


def test_run_on_a_store_that_is_not_a_database_fails_in_one_line(
    agent_config: Path, tmp_path: Path
) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "provsync.db").write_bytes(b"\x13garbage, not SQLite" * 500)
    result = provsync("run", "--config", str(agent_config))
    assert_one_line(result, 1, "store")
    assert "sqlalche.me" not in result.stderr


def test_run_with_a_state_file_that_is_a_directory_fails_in_one_line(
    agent_config: Path, tmp_path: Path
) -> None:
    (tmp_path / "var" / "snmp-engine.json").mkdir(parents=True)
    result = provsync("run", "--config", str(agent_config))
    assert_one_line(result, 1, "snmp-engine.json")


def test_run_with_the_api_port_taken_fails_in_one_line(agent_config: Path) -> None:
    listen = agent_config.read_text().split('listen = "', 1)[1].split('"', 1)[0]
    host, port = listen.rsplit(":", 1)
    with socket.socket() as taken:
        taken.bind((host, int(port)))
        taken.listen()
        result = provsync("run", "--config", str(agent_config))
    assert_one_line(result, 1, f"control API cannot listen on {listen}")


# ---------------------------------------------------------------- simulate
def test_simulate_of_an_unknown_type_names_the_types() -> None:
    result = provsync("simulate", "--type", "router", "--objects", "1")
    assert_one_line(result, 2, "'router' is not one of 'call-server', 'small-office', 'messaging'")


def test_simulate_on_a_taken_port_fails_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = provsync("simulate", "--port", str(port), "--objects", "1")
    assert_one_line(result, 1, f"cannot listen on 127.0.0.1:{port}")


# ---------------------------------------------------------------- usage errors
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["events", "list", "--after", "-5"], "Invalid value for '--after'"),
        (["alarms", "lst"], "No such command 'lst'"),
        (["alarms", "raise"], "Missing argument 'TYPE'"),
        (["--no-such-option", "status"], "No such option: --no-such-option"),
        (["simulate", "--port", "0"], "Invalid value for '--port'"),
    ],
)
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    line = assert_one_line(provsync(*args, cwd=tmp_path), 2, needle)
    assert "--help" in line, "it says where the usage is"


def test_help_is_still_shown_in_full(tmp_path: Path) -> None:
    assert "alarms" in provsync("--help", cwd=tmp_path).stdout
    bare = provsync("alarms", cwd=tmp_path)
    assert "Commands" in bare.stdout + bare.stderr
    assert "Traceback" not in bare.stderr


def test_the_simulator_listens_without_nagle(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without TCP_NODELAY on the listening socket (accepted connections inherit it) every
    # keep-alive answer waited for the client's delayed ACK: `provsync simulate` answered
    # about 20 updates a second instead of about 250 (bench/sharing.py, its anchor).
    import uvicorn
    from typer.testing import CliRunner

    from agent.cli.main import app

    served: list[socket.socket] = []

    def run(self: uvicorn.Server, sockets: list[socket.socket]) -> None:
        served.extend(sockets)

    monkeypatch.setattr(uvicorn.Server, "run", run)
    port = free_port()
    result = CliRunner().invoke(app, ["simulate", "--port", str(port), "--objects", "0"])
    assert result.exit_code == 0, result.output
    try:
        assert len(served) == 1
        assert served[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        for sock in served:
            sock.close()
