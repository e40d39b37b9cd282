"""``provsync``: run the agent and operate it through its control API.

The root command and its options live here; each command group is a module of
agent/cli (alarms, events, config_commands, elements, jobs, sharing, distribution,
keys, tools, agent_commands) over the typed API client of agent/cli/client.py.

Exit status: 0 success; 1 the agent refused or could not be reached, or a runtime error;
2 bad usage or a bad configuration.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

try:  # typer carries its own click since 0.2x; older typer used click itself
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_errors  # type: ignore[no-redef]

from agent import __version__
from agent.cli import agent_commands, console, failures, output, tools
from agent.cli.alarms import alarms_app
from agent.cli.common import Context
from agent.cli.config_commands import config_app
from agent.cli.distribution import distribution_app
from agent.cli.elements import elements_app
from agent.cli.events import events_app
from agent.cli.jobs import jobs_app, sync_app
from agent.cli.keys import keys_app
from agent.cli.sharing import objects_app, sharing_app
from agent.config import ENV_CONFIG
from agent.errors import ConfigError, ProvsyncError

app = typer.Typer(
    name="provsync",
    help="Provisioning sync agent: alarms, events and their export.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# The help lists the commands in this order, then the groups in theirs.
for command in (
    agent_commands.run,
    agent_commands.stop,
    agent_commands.status,
    agent_commands.catalog,
    agent_commands.cluster,
    console.console,
    tools.demo,
    tools.simulate,
):
    app.command()(command)
for name, group in (
    ("alarms", alarms_app),
    ("events", events_app),
    ("config", config_app),
    ("mib", tools.mib_app),
    ("elements", elements_app),
    ("sync", sync_app),
    ("jobs", jobs_app),
    ("sharing", sharing_app),
    ("distribution", distribution_app),
    ("objects", objects_app),
    ("keys", keys_app),
):
    app.add_typer(group, name=name)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"provsync {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar=ENV_CONFIG,
            help="Configuration file (default: ./etc/provsync.toml, /etc/provsync/provsync.toml).",
        ),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(envvar="PROVSYNC_API_URL", help="Control API URL (default: from config)."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="PROVSYNC_TOKEN",
            help="API token (default: from config or api.token).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    """Provisioning sync agent."""
    ctx.obj = Context(config, api_url, token)


def main() -> None:
    try:
        # Not standalone: click's usage errors come here to be told in one line.
        code = app(standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        exc.show()  # a group without its command: the group's help, as before
        sys.exit(exc.exit_code)
    except click_errors.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx is not None else None
        output.error(failures.usage_line(exc.format_message(), path))
        sys.exit(exc.exit_code)
    except click_errors.ClickException as exc:
        output.error(failures.one_line(exc.format_message()))
        sys.exit(exc.exit_code)
    except typer.Abort:
        output.error("aborted")
        sys.exit(1)
    except ConfigError as exc:
        output.error(str(exc))
        sys.exit(2)
    except ProvsyncError as exc:
        output.error(str(exc))
        sys.exit(1)
    except OSError as exc:
        output.error(failures.reason(exc))
        sys.exit(1)
    # typer.Exit (every _fail) comes back as its code; a command's return value is not one.
    sys.exit(code if isinstance(code, int) else 0)
