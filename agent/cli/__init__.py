"""The ``provsync`` command line: typer + rich, talking to the control API."""
