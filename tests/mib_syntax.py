"""PROVSYNC-MIB's syntaxes read from the module text, and a check of one encoded value
against them: the agent's encoders are tested against the MIB, not against themselves.

Only what the module uses is understood: SnmpAdminString with or without SIZE,
DateAndTime, Unsigned32 (with a range), Gauge32, Counter32 and its INTEGER textual
conventions.
"""

from __future__ import annotations

import re
from functools import cache

from agent.export.snmp import ber
from tests.netsnmp import MIBS

_OBJECT = re.compile(r"^(\w+) OBJECT-TYPE\s+SYNTAX\s+([^\n]+)", re.M)
_ENUM_TC = re.compile(r"^(\w+) ::= TEXTUAL-CONVENTION.*?SYNTAX INTEGER \{([^}]*)\}", re.M | re.S)
_SIZE = re.compile(r"SnmpAdminString \(SIZE \((\d+)\.\.(\d+)\)\)")
_RANGE = re.compile(r"Unsigned32 \((\d+)\.\.(\d+)\)")


@cache
def syntaxes() -> dict[str, str]:
    """Object name -> its SYNTAX clause, for every OBJECT-TYPE of the module."""
    text = (MIBS / "PROVSYNC-MIB.txt").read_text()
    return {name: syntax.strip() for name, syntax in _OBJECT.findall(text)}


@cache
def enumerations() -> dict[str, frozenset[int]]:
    """INTEGER textual convention -> its numbers."""
    text = (MIBS / "PROVSYNC-MIB.txt").read_text()
    return {
        name: frozenset(int(n) for n in re.findall(r"\((\d+)\)", body))
        for name, body in _ENUM_TC.findall(text)
    }


def check(name: str, value: bytes) -> None:
    """Assert that the value TLV ``value`` fits the SYNTAX of object ``name``."""
    syntax = syntaxes()[name]
    tag, start, end = ber.header(value, 0)
    assert end == len(value), (name, "trailing octets")
    content = value[start:end]
    if syntax.startswith("SnmpAdminString"):
        assert tag == ber.OCTET_STRING, (name, tag)
        size = _SIZE.fullmatch(syntax)
        low, high = (int(size[1]), int(size[2])) if size else (0, 255)
        assert low <= len(content) <= high, (name, len(content), syntax)
        content.decode("utf-8")  # SnmpAdminString is UTF-8: a cut never splits a character
    elif syntax == "DateAndTime":
        assert tag == ber.OCTET_STRING, (name, tag)
        assert len(content) in (8, 11), (name, content.hex())
    elif syntax in enumerations():
        assert tag == ber.INTEGER, (name, tag)
        assert ber.decode_int(value, start, end) in enumerations()[syntax], (name, content.hex())
    elif syntax.startswith(("Unsigned32", "Gauge32", "Counter32")):
        assert tag == (ber.COUNTER32 if syntax == "Counter32" else ber.GAUGE32), (name, tag)
        number = int.from_bytes(content, "big")
        bounds = _RANGE.fullmatch(syntax)
        low, high = (int(bounds[1]), int(bounds[2])) if bounds else (0, 2**32 - 1)
        assert low <= number <= high, (name, number)
        assert len(content) <= 5, (name, content.hex())
        assert len(content) < 5 or content[0] == 0, (name, content.hex())
    else:
        raise AssertionError(f"{name}: syntax {syntax!r} is not known to this check")
