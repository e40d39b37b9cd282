"""The exporter interface shared by every downstream target, and its delivery loop.

An exporter owns a cursor (last sequence number delivered) in the store. Its task reads
the notification log after the cursor, delivers what passes its filter, then commits the
cursor. After a crash it resumes from the committed cursor, so a target sees every
notification at least once, and a repeat only of entries after that cursor.

Nearly caught up, it reads the rows from the log's tail (committed rows in
memory), not from the store; behind the tail (after a restart, a slow target) it reads the
store. Each round takes everything there is up to ``batch_size``. The cursor is committed
by the alarm manager's writer, in its group commit with whatever else is queued (no
write transaction of its own competing for the store's lock): in the background while
the next batch goes out, one save in flight at a time, so what is delivered and not yet
saved stays within two batches; at once when idle; and at stop(). Failed
deliveries are retried with exponential backoff; a target that falls more than
``backlog_threshold`` behind raises the exporter-backlog alarm, cleared when it has caught
up. A slow or dead target only grows its own backlog: the alarm manager never waits for it.

Commits wake an idle exporter, never one waiting out its backoff (only stop() does), so a
dead target is tried at the pace of the backoff whatever the commit rate. Every open is
bounded by ``deliver_timeout``; a delivery is given up after ``deliver_timeout`` without
progress (the deadline starts over at every acknowledged notification; a delivery given
up on is awaited ``CANCEL_GRACE`` seconds so what it reports as it ends counts), and a
failed batch that got part of it acknowledged keeps that part, starts the backoff over and does not
count as the target going down. The log says when a target goes down, reminds every
``down_reminder_interval`` while it stays down, and says when it is back; each attempt is
counted (status) but not logged above DEBUG.

While the store is fenced (the alarm manager's write guard refuses: another agent owns
it), nothing is delivered: each round waits out the backoff and asks again, so a fenced
agent never interleaves a batch with the new owner's resend; the connection stays open
and a batch already read stays in memory. The store is not the target: when it refuses
the cursor save (fenced, down) after a delivery, the delivered position is kept in
memory and only the save is retried (with the backoff), so nothing is sent twice by this
process; reads and saves that fail are logged as "export target X: cannot save its
cursor: ..." (or "cannot read the notification log", "not delivering while the store is
fenced"), one line per kind per ``down_reminder_interval``. The backlog alarm's state
changes only once the store took the raise or clear.

The rows a target has read and holds in memory (at most ``batch_size``), with those it
delivered while their save is in flight, are announced to the alarm manager (its holding)
before the read starts: retention keeps them until the cursor is saved past them, so a
restart from the committed cursor still finds them.

When retention purged entries the target had not received (past [retention]
``max_backlog``), the next batch starts above the cursor: the target is first sent an
export-gap notice naming the lost range in words (numbered as the last lost entry, so its
sequence still shows the jump), then the rest in order.

Exporters see the alarm manager only through agent.alarms.ports (``ExporterPorts``: the
notification log, read-only but for its own cursor and holding, and the sink for its
backlog alarm); they are handed no engine. The parts: ``exporter`` (the class and its
loop), ``saves`` (the cursor saves), ``progress`` (the delivery deadline), ``health``
(down and back), ``notices`` (the gap notice, the backlog alarm).
"""

from __future__ import annotations

from agent.export.base.exporter import Exporter
from agent.export.base.notices import BACKLOG_ALARM, GAP_EVENT
from agent.export.base.progress import CANCEL_GRACE

__all__ = ["BACKLOG_ALARM", "CANCEL_GRACE", "GAP_EVENT", "Exporter"]
