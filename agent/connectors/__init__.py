"""Connectors: one contract (base.Connector), drivers found through entry points."""
