"""provsync: unified-communications provisioning sync agent."""

from __future__ import annotations

__version__ = "0.1.0"
