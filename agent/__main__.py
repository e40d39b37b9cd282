"""``python -m agent`` is the same as ``provsync``."""

from __future__ import annotations

from agent.cli.main import main

main()
