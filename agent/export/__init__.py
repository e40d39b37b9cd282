"""Exporters: every downstream target reads the notification log from its own cursor."""
