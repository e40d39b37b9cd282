"""The kinds of network element the agent manages: the values of an element's ``type``
(the elements table's column), as the control API and the CLI take them.

The element simulator spells the one it serves itself: it stands for an element, a peer
of the agent that shares the Element API's values, not the agent's modules.
"""

from __future__ import annotations

CALL_SERVER = "call-server"
SMALL_OFFICE = "small-office"
MESSAGING = "messaging"
"""The one kind programmed with other elements (its ``uses``): it takes their changes only
when it is activated, so sharing raises an activation alarm for it instead of pushing."""

ELEMENT_TYPES = (CALL_SERVER, SMALL_OFFICE, MESSAGING)
DEFAULT_ELEMENT_TYPE = CALL_SERVER
"""The type of an element added without one."""

ELEMENT_TYPES_TEXT = f"{', '.join(ELEMENT_TYPES[:-1])} or {ELEMENT_TYPES[-1]}"
"""The types for a message: "call-server, small-office or messaging"."""
