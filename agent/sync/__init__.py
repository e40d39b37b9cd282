"""Synchronization with network elements: element registry, jobs, engine, scheduler."""
