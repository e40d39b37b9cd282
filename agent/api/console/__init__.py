"""The web console, served by the agent under ``/ui/`` (docs/console.md)."""
