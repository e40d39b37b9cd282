"""`provsync` processes forked from a process that has imported the agent once.

A `provsync run` started from its console script spends about 1.5 s of CPU importing
FastAPI, pydantic, SQLAlchemy and pysnmp before it does anything; a CLI command about
0.5 s. The suite starts some 150 agents, 70 simulators and 200 CLI commands, so on this
machine's two cores those imports were half of the suite's CPU time. multiprocessing's
forkserver imports the agent once (``set_forkserver_preload``) and forks each process
from there: the child runs the same ``agent.cli.main.main()`` with its own argv,
environment, umask, working directory and output files, and is a real process (its own
pid, signals, exit status, sockets). What differs from a process started from the
console script: stdin is /dev/null, atexit handlers do not run (the agent has none), and
variables read when the interpreter starts (PYTHON*, TZ) come from the forkserver.

The console script itself still runs where a test is about it (tests/test_packaging.py,
the CLI tests that answer a prompt on stdin).
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

_CONTEXT = multiprocessing.get_context("forkserver")
# By module name, from the installed package (Python 3.11's forkserver does not take the
# tests' sys.path); "__main__" too, so that the children find the test runner's main
# module loaded instead of running it again (multiprocessing's fix-up of __main__).
_CONTEXT.set_forkserver_preload(
    [
        "__main__",
        "agent.app",
        "agent.cli.main",
        "agent.simulator.app",
        "alembic.command",
        "alembic.runtime.environment",
        "uvicorn.protocols.http.h11_impl",
        "uvicorn.protocols.http.httptools_impl",
    ]
)


def _main(
    argv: list[str],
    env: dict[str, str],
    cwd: str,
    stdout: str,
    stderr: str,
    umask: int,
    setup: Callable[[], None] | None,
) -> None:
    """In the child: the console script's ``sys.exit(main())`` with the given set-up."""
    # What a child of the test process would inherit, not what the forkserver had.
    os.umask(umask)
    for fd, path in ((1, stdout), (2, stderr)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(target, fd)
        os.close(target)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.argv = ["provsync", *argv]
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if setup is not None:
        setup()

    from agent.cli import output
    from agent.cli.main import main

    # The CLI's consoles read the terminal and COLUMNS when imported: in the forkserver,
    # not here. Made again for this child's output files and environment.
    importlib.reload(output)

    sys.exit(main())


class Forked:
    """The part of ``subprocess.Popen`` the tests use, for a forked ``provsync``."""

    def __init__(
        self,
        args: list[str],
        *,
        env: dict[str, str],
        cwd: Path,
        stdout: Path,
        stderr: Path | None = None,
        setup: Callable[[], None] | None = None,
    ) -> None:
        """``setup``, a module-level function, runs in the child before the command (a
        test's way to speed up a library clock there; the agent's code is unchanged)."""
        self.args = args
        umask = os.umask(0o077)
        os.umask(umask)
        self._process = _CONTEXT.Process(
            target=_main,
            args=(args, env, str(cwd), str(stdout), str(stderr or stdout), umask, setup),
            daemon=True,
        )
        self._process.start()
        assert self._process.pid is not None
        self.pid: int = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(["provsync", *self.args], timeout or 0.0)
        return code

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def run(
    args: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """A CLI command, waited for, with its output (as ``subprocess.run`` would give it)."""
    with tempfile.TemporaryDirectory(prefix="provsync-cli-") as where:
        out, err = Path(where) / "stdout", Path(where) / "stderr"
        process = Forked(args, env=env, cwd=cwd, stdout=out, stderr=err)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        return subprocess.CompletedProcess(
            ["provsync", *args],
            code,
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
        )
