"""``provsync demo|simulate|mib``: tools that need no running agent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent.cli import output
from agent.cli.common import JsonOpt, context_of, fail
from agent.cli.element_kinds import DEFAULT_TYPE, TYPE_HELP, ElementType
from agent.errors import ProvsyncError
from agent.listen import bind_socket

mib_app = typer.Typer(help="The PROVSYNC-MIB module.", no_args_is_help=True)


# --------------------------------------------------------------------------- demo
def demo(
    exit_after_setup: Annotated[
        bool, typer.Option(help="Stop once set up (for scripts and tests).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the agent with three simulated elements (call server, small office, messaging)."""
    from agent.cli.demo import run_demo

    def say(text: str) -> None:
        if not as_json:
            output.console.print(text, highlight=False, markup=False)

    result = run_demo(say, stay=not exit_after_setup)
    if as_json:
        output.print_json(result)
    if any(state != "done" for state in result["jobs"].values()):
        fail(f"some demo syncs did not complete: {result['jobs']}")


# --------------------------------------------------------------------------- simulate
def simulate(
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port to serve on.")] = 9001,
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    element_type: Annotated[
        ElementType, typer.Option("--type", metavar="TYPE", help=TYPE_HELP)
    ] = DEFAULT_TYPE,
    objects: Annotated[int, typer.Option(min=0, help="Objects to generate.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = 1,
    element_id: Annotated[str | None, typer.Option(help="Default: sim-PORT.")] = None,
    software_version: Annotated[str, typer.Option()] = "10.2.1",
    username: Annotated[str, typer.Option(help="Username the element accepts.")] = "admin",
    password_file: Annotated[
        Path | None, typer.Option(help="File holding the password (default: none needed).")
    ] = None,
    hub: Annotated[str, typer.Option(help="The hub's control API URL, to call it.")] = "",
    hub_token_file: Annotated[
        Path | None, typer.Option(help="File holding the hub's element token.")
    ] = None,
) -> None:
    """Run a reference network element serving Element API v1 (docs/element-api.md)."""
    import uvicorn

    from agent.logs import setup_logging
    from agent.simulator.app import Faults, Simulator, create_simulator_app
    from agent.simulator.state import ElementState

    password = ""
    if password_file is not None:
        try:
            password = password_file.read_text().strip()
        except OSError as exc:
            fail(f"cannot read {password_file}: {exc.strerror}", 2)
    state = ElementState(element_id or f"sim-{port}", element_type.value, software_version)
    state.generate(objects, seed)
    hub_token = ""
    if hub_token_file is not None:
        try:
            hub_token = hub_token_file.read_text().strip()
        except OSError as exc:
            fail(f"cannot read {hub_token_file}: {exc.strerror}", 2)
    if hub and not hub.startswith(("http://", "https://")):
        fail("--hub must be a URL such as http://127.0.0.1:8163", 2)
    simulator = Simulator(state, username, password, Faults(), hub.rstrip("/"), hub_token)
    # Bound here, not by uvicorn: a taken port is one line and exit 1, not uvicorn's exit 3.
    try:
        sock = bind_socket(host, port, "simulator")
    except ProvsyncError as exc:
        fail(str(exc))
    setup_logging("WARNING")
    output.errors.print(
        f"simulated {element_type} {state.element_id} on http://{host}:{port} "
        f"({sum(state.counts().values())} objects)",
        highlight=False,
        markup=False,
    )
    config = uvicorn.Config(create_simulator_app(simulator), log_config=None, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


# --------------------------------------------------------------------------- mib
@mib_app.command("export")
def mib_export(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory to write the MIB into.")],
    root: Annotated[
        str | None,
        typer.Option(help="Enterprise OID to root the module at (default: [snmp] enterprise_oid)."),
    ] = None,
    module: Annotated[
        str | None,
        typer.Option(
            help="Module name (default: PROVSYNC-MIB at the default root, "
            "PROVSYNC-<arcs below enterprises>-MIB elsewhere)."
        ),
    ] = None,
) -> None:
    """Write the PROVSYNC-MIB module rooted where the agent serves it, as <module>.txt."""
    from agent.export.snmp.mibtext import default_module_name, export
    from agent.oids import parse_oid

    text_root = root or context_of(ctx).settings().snmp.enterprise_oid
    try:
        arcs = parse_oid(text_root)
        name = module if module is not None else default_module_name(arcs)
        path = export(out, arcs, name)
    except ValueError as exc:
        fail(str(exc), 2)
    except OSError as exc:
        fail(f"cannot write to {out}: {exc.strerror}")
    # soft_wrap: a long path stays one line a script can read back.
    output.console.print(
        f"wrote {path} (module {name}, root {text_root})",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
