"""PROVSYNC-MIB compiled by pysmi at test time, and values checked against its syntax.

A second SMI implementation beside net-snmp: pysmi compiles ``mibs/PROVSYNC-MIB.txt`` (with
the base modules of ``../shared/mibs/ietf``, and pysnmp's own precompiled modules where it
has them) into a temporary directory; pysnmp's MibBuilder loads the result, and
:meth:`CompiledMib.check` tells whether one (OID, value) pair, as decoded off the wire,
fits the syntax of the object the MIB defines for it: the ASN.1 type, SIZE and range
constraints, enumerations, the UTF-8 of SnmpAdminString (RFC 3411), the NVT ASCII of
DisplayString and the fields of DateAndTime (RFC 2579), the index of a table column, and
the object's MAX-ACCESS (a walk must not return accessible-for-notify objects).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyasn1.type import univ
from pysmi.codegen import PySnmpCodeGen
from pysmi.compiler import MibCompiler
from pysmi.parser import SmiStarParser
from pysmi.reader import FileReader
from pysmi.searcher import PyFileSearcher, PyPackageSearcher, StubSearcher
from pysmi.writer import PyFileWriter
from pysnmp.smi import builder, view
from pysnmp.smi.error import SmiError

from tests.netsnmp import MIBS, base_mibs

MODULE = "PROVSYNC-MIB"
# What the agent serves beside PROVSYNC-MIB (pysnmp ships these precompiled).
STANDARD_MODULES = ("SNMPv2-MIB", "SNMP-FRAMEWORK-MIB", "SNMP-MPD-MIB", "SNMP-USER-BASED-SM-MIB")
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)


@dataclass(frozen=True)
class Violation:
    """One value that does not fit the MIB: the object, the instance and why."""

    oid: tuple[int, ...]
    name: str
    index: str
    why: str

    def __str__(self) -> str:
        where = f"{self.name}.{self.index}" if self.index else self.name
        return f"{where} ({'.'.join(map(str, self.oid))}): {self.why}"


@dataclass(frozen=True)
class Notification:
    """The notification a list of varbinds reports, and what is wrong with it."""

    trap: str
    violations: list[Violation]


def compile_mib(out: Path, source_dir: Path = MIBS) -> Path:
    """Compile PROVSYNC-MIB from source into ``out``; raise naming pysmi's error."""
    compiler = MibCompiler(SmiStarParser(), PySnmpCodeGen(), PyFileWriter(str(out)))
    compiler.add_sources(FileReader(str(source_dir)), FileReader(str(base_mibs())))
    compiler.add_searchers(
        PyFileSearcher(str(out)),
        PyPackageSearcher("pysnmp.smi.mibs"),
        StubSearcher(*PySnmpCodeGen.baseMibs),
    )
    # rebuild: the module under test always comes from today's source, never a cache.
    results = compiler.compile(MODULE, rebuild=True)
    failed = {
        name: getattr(status, "error", status)
        for name, status in results.items()
        if status in ("failed", "missing")
    }
    if results.get(MODULE) != "compiled" or failed:
        raise AssertionError(f"pysmi could not compile {MODULE}: {results} {failed}")
    return out


class CompiledMib:
    """pysnmp's view of the compiled modules, and the syntax checks."""

    def __init__(self, compiled: Path) -> None:
        self.builder = builder.MibBuilder()
        self.builder.add_mib_sources(builder.DirMibSource(str(compiled)))
        with warnings.catch_warnings():
            # pysmi (up to 2.0) writes mibBuilder.importSymbols, which pysnmp 7.1 still
            # runs but calls deprecated; its own precompiled modules say import_symbols.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.builder.load_modules(MODULE, *STANDARD_MODULES)
        self.view = view.MibViewController(self.builder)
        (self._admin_string,) = self.builder.import_symbols("SNMP-FRAMEWORK-MIB", "SnmpAdminString")
        self._display_string, self._date_and_time = self.builder.import_symbols(
            "SNMPv2-TC", "DisplayString", "DateAndTime"
        )

    # ----------------------------------------------------------------- lookups
    def symbol(self, module: str, name: str) -> Any:
        return self.builder.import_symbols(module, name)[0]

    def oid(self, module: str, name: str) -> tuple[int, ...]:
        return tuple(self.symbol(module, name).getName())

    def locate(self, oid: Sequence[int]) -> tuple[str, str, tuple[int, ...]]:
        """(module, symbol, instance suffix) of the nearest defined node above ``oid``."""
        module, name, suffix = self.view.get_node_location(univ.ObjectIdentifier(tuple(oid)))
        return str(module), str(name), tuple(suffix)

    def objects_of(self, trap_oid: Sequence[int]) -> tuple[str, list[tuple[str, str]]]:
        """The NOTIFICATION-TYPE named by ``trap_oid`` and its OBJECTS, in order."""
        module, name, suffix = self.locate(trap_oid)
        node = self.symbol(module, name)
        if suffix or type(node).__name__ != "NotificationType":
            raise LookupError(f"{'.'.join(map(str, trap_oid))} is no NOTIFICATION-TYPE")
        return f"{module}::{name}", [(str(m), str(s)) for m, s in node.getObjects()]

    # ----------------------------------------------------------------- checks
    def check(self, oid: Sequence[int], value: Any, *, notify: bool = False) -> list[Violation]:
        """What is wrong with ``value`` at ``oid``: an empty list when it fits the MIB.

        ``notify``: the varbind was in a notification, where accessible-for-notify objects
        belong; in a GET or walk answer they must not appear (RFC 2578 7.3).
        """
        oid = tuple(int(arc) for arc in oid)
        try:
            module, name, suffix = self.locate(oid)
        except SmiError:
            return [Violation(oid, "?", "", "not under any node of the loaded modules")]
        node = self.symbol(module, name)
        label = f"{module}::{name}"
        kind = type(node).__name__
        index = ".".join(map(str, suffix))

        def bad(why: str) -> list[Violation]:
            return [Violation(oid, label, index, why)]

        if kind not in ("MibScalar", "MibTableColumn"):
            return bad(f"answered for a {kind}, not an OBJECT-TYPE with a value")
        access = str(node.getMaxAccess())
        if access == "not-accessible" or (access == "accessible-for-notify" and not notify):
            return bad(f"MAX-ACCESS {access} object {'sent' if notify else 'served'}")
        if kind == "MibScalar" and suffix != (0,):
            return bad("scalar instance is not .0")
        problems = []
        if kind == "MibTableColumn":
            problems = self._check_index(node, suffix)
        return [Violation(oid, label, index, why) for why in problems + self._fits(node, value)]

    def _check_index(self, column: Any, suffix: tuple[int, ...]) -> list[str]:
        module, row_name, _ = self.locate(tuple(column.getName())[:-1])
        row = self.symbol(module, row_name)
        try:
            row.getIndicesFromInstId(suffix)
        except Exception as exc:  # pysnmp raises several types for a bad index
            return [f"index {suffix} does not fit INDEX {row.getIndexNames()}: {exc}"]
        return []

    def _fits(self, node: Any, value: Any) -> list[str]:
        syntax = node.getSyntax()
        if not hasattr(value, "tagSet"):
            return [f"value {value!r} is no ASN.1 value"]
        if value.tagSet != syntax.tagSet:
            return [f"type {type(value).__name__}, the MIB says {type(syntax).__name__}"]
        raw = value.asOctets() if isinstance(value, univ.OctetString) else value
        try:
            checked = syntax.clone(raw)
        except Exception:  # pyasn1's ValueConstraintError (its text repeats the value)
            return [
                f"{_describe(value)} outside {type(syntax).__name__} "
                f"{_constraints(syntax.subtypeSpec)}"
            ]
        named = getattr(syntax, "namedValues", None)
        if named and int(checked) not in named.values():
            return [f"{int(checked)} is not one of {dict(named.items())}"]
        if isinstance(syntax, self._date_and_time):
            return _date_and_time(bytes(checked.asOctets()))
        if isinstance(syntax, self._admin_string):
            return _utf8(bytes(checked.asOctets()))
        if isinstance(syntax, self._display_string):
            return _nvt_ascii(bytes(checked.asOctets()))
        return []

    def check_notification(self, varbinds: Sequence[tuple[Sequence[int], Any]]) -> Notification:
        """Check a notification's varbinds as RFC 3416 4.2.6 orders them: sysUpTime.0,
        snmpTrapOID.0, the NOTIFICATION-TYPE's OBJECTS in order, then any extra ones; every
        value against its syntax."""
        found: list[Violation] = []
        pairs = [(tuple(int(a) for a in oid), value) for oid, value in varbinds]
        if len(pairs) < 2 or pairs[0][0] != SYS_UPTIME or pairs[1][0] != SNMP_TRAP_OID:
            oids = [".".join(map(str, oid)) for oid, _ in pairs[:2]]
            found.append(
                Violation(
                    (),
                    "notification",
                    "",
                    f"starts {oids}, not sysUpTime.0, snmpTrapOID.0 (RFC 3416 4.2.6)",
                )
            )
            return Notification("?", found + self._check_all(pairs, notify=True))
        trap_value = pairs[1][1]
        try:
            trap, objects = self.objects_of(tuple(trap_value))
        except (LookupError, SmiError) as exc:
            found.append(Violation(pairs[1][0], "snmpTrapOID", "0", str(exc)))
            return Notification(str(trap_value), found + self._check_all(pairs, notify=True))
        rest = pairs[2:]
        for position, (module, name) in enumerate(objects):
            expected = self.oid(module, name)
            got = rest[position][0] if position < len(rest) else None
            # The agent's notification objects are scalars: their instance is .0.
            if got is None or got[: len(expected)] != expected:
                shown = ".".join(map(str, got)) if got else "nothing"
                why = f"OBJECTS item {position + 1} of {trap} missing: {shown} there"
                found.append(Violation(expected, f"{module}::{name}", "", why))
        return Notification(trap, found + self._check_all(pairs, notify=True))

    def _check_all(
        self, pairs: Iterable[tuple[tuple[int, ...], Any]], *, notify: bool
    ) -> list[Violation]:
        found: list[Violation] = []
        for oid, value in pairs:
            found.extend(self.check(oid, value, notify=notify))
        return found


def _describe(value: Any) -> str:
    if isinstance(value, univ.OctetString):
        return f"{len(value.asOctets())} octets"
    return repr(value.prettyPrint())


_CONSTRAINT_WORDS = (
    (re.compile(r"<ValueSizeConstraint object, consts (-?\d+), (-?\d+)>"), r"SIZE(\1..\2)"),
    (re.compile(r"<ValueRangeConstraint object, consts (-?\d+), (-?\d+)>"), r"(\1..\2)"),
    (re.compile(r"<SingleValueConstraint object, consts ([-\d, ]+)>"), r"{\1}"),
    (re.compile(r"<ConstraintsIntersection object(, consts )?"), "all("),
    (re.compile(r"<ConstraintsUnion object(, consts )?"), "any("),
    (re.compile(r">"), ")"),
)


def _constraints(spec: Any) -> str:
    """pyasn1's constraint tree in SMI words: all(SIZE(0..65535), any(SIZE(0..255)))."""
    text = repr(spec)
    for pattern, words in _CONSTRAINT_WORDS:
        text = pattern.sub(words, text)
    return text


def _utf8(octets: bytes) -> list[str]:
    try:
        octets.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [f"SnmpAdminString is not UTF-8 (RFC 3411): {exc}"]
    return []


def _nvt_ascii(octets: bytes) -> list[str]:
    # RFC 2579 DisplayString: NVT ASCII; CR only before LF or NUL.
    if any(b > 0x7F for b in octets):
        return ["DisplayString has octets above 127 (RFC 2579: NVT ASCII)"]
    for at, b in enumerate(octets):
        if b == 0x0D and octets[at + 1 : at + 2] not in (b"\n", b"\x00"):
            return ["DisplayString has a CR not followed by LF or NUL (RFC 2579)"]
    return []


def _date_and_time(octets: bytes) -> list[str]:
    """RFC 2579 DateAndTime: 8 or 11 octets, each field in its range."""
    if len(octets) not in (8, 11):
        return [f"DateAndTime of {len(octets)} octets (RFC 2579: 8 or 11)"]
    if octets == bytes(8):
        # '0000000000000000'H: "unknown", the convention of ENTITY-STATE-MIB (RFC 4268)
        # that PROVSYNC-MIB adopts for what never happened.
        return []
    year = int.from_bytes(octets[0:2], "big")
    fields = [
        ("month", octets[2], 1, 12),
        ("day", octets[3], 1, 31),
        ("hour", octets[4], 0, 23),
        ("minutes", octets[5], 0, 59),
        ("seconds", octets[6], 0, 60),
        ("deci-seconds", octets[7], 0, 9),
    ]
    if len(octets) == 11:
        fields += [("hours from UTC", octets[9], 0, 13), ("minutes from UTC", octets[10], 0, 59)]
    problems = [
        f"DateAndTime {field} {got} outside {low}..{high}"
        for field, got, low, high in fields
        if not low <= got <= high
    ]
    if len(octets) == 11 and octets[8:9] not in (b"+", b"-"):
        problems.append(f"DateAndTime direction {octets[8:9]!r} is not '+' or '-'")
    if year == 0:
        problems.append("DateAndTime year 0")
    return problems
