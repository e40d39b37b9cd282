"""Several agents on one PostgreSQL store ([cluster]): one leads, the others stand by.

The store's advisory lock is the election (agent.store.ownership): whoever holds it leads
and runs the whole lifecycle (agent.app); the others serve a minimal control API and try
the lock every ``poll_interval`` (:mod:`agent.cluster.standby`). Every member writes a
heartbeat row (:mod:`agent.cluster.members`).
"""
