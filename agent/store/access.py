"""Typed access to the store: one repository per concern, bundled for the components.

Built once by app.py from the opened ``Store`` and handed to the sync engine, the sharing
service and the control API, so none of them reaches through the alarm manager for the
database. Each repository returns frozen dataclasses (agent/store/elements.py, jobs.py,
distributions.py, conflicts.py...), never SQLAlchemy rows. A write that spans several
repositories runs in one transaction: ``with access.begin() as conn:`` and the
repositories' methods that take ``conn``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from sqlalchemy import Connection, Engine

from agent.store.bases import Bases
from agent.store.conflicts import Conflicts
from agent.store.devices import Devices
from agent.store.distribution_admin import DistributionAdmin
from agent.store.distributions import Distributions
from agent.store.elements import Elements
from agent.store.jobs import Jobs
from agent.store.meta import Meta
from agent.store.objects import Objects
from agent.store.shared_data import SharedData


class StoreAccess:
    """The repositories over one engine (``Store.engine``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        """For the alarm reads (agent.alarms.queries) of the components given this."""
        self.elements = Elements(engine)
        self.jobs = Jobs(engine)
        self.objects = Objects(engine)
        self.shared = SharedData(engine)
        self.bases = Bases(engine)
        self.distributions = Distributions(engine)
        self.distribution_admin = DistributionAdmin(engine)
        self.conflicts = Conflicts(engine)
        self.devices = Devices(engine)
        self.meta = Meta(engine)

    def begin(self) -> AbstractContextManager[Connection]:
        """One transaction for writes composed across repositories."""
        return self.engine.begin()

    def drop_sharing_records(self, conn: Connection, element_id: int) -> None:
        """An element is removed: its base, distributions and device data go, its open
        conflicts are resolved as removed."""
        self.bases.drop(conn, element_id)
        self.distributions.drop_for(conn, element_id)
        self.devices.drop_for(conn, element_id)
        self.conflicts.close_open_for(conn, element_id, "removed")
