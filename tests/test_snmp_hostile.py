"""Hostile SNMP datagrams: decoding is linear and bounded, unauthenticated input is
dropped (and counted by reason) before it costs more than a header walk."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from agent.export.snmp import ber


def _cost(work: Callable[[], object], rounds: int = 5) -> float:
    """The best of a few runs: robust against a busy machine."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def _oid_with_arc(octets: int) -> bytes:
    """1.3 then one sub-identifier of ``octets`` base-128 octets."""
    return b"\x2b" + b"\xff" * (octets - 1) + b"\x7f"


def _reject(body: bytes) -> None:
    with pytest.raises(ber.BerError):
        ber.decode_oid(body)


def _attempt(body: bytes) -> None:
    try:
        ber.decode_oid(body)
    except ber.BerError:
        pass


def test_oid_decoding_is_linear_in_the_length_of_an_arc() -> None:
    small, large = _oid_with_arc(16_000), _oid_with_arc(64_000)
    # Quadratic decoding makes 4x the input cost ~16x; linear (or rejecting at once) ~4x
    # or less. 8x separates the two with room for a noisy machine.
    floor = 20e-6  # timer resolution and call overhead: below it the ratio is noise
    ratio = max(_cost(lambda: _attempt(large)), floor) / max(_cost(lambda: _attempt(small)), floor)
    assert ratio < 8, ratio
    _reject(large)


def test_many_single_octet_arcs_are_rejected_past_128() -> None:
    assert len(ber.decode_oid(b"\x2b" + b"\x01" * 126)) == 128
    _reject(b"\x2b" + b"\x01" * 127)
    _reject(b"\x2b" + b"\x01" * 64_000)


def test_sub_identifiers_are_at_most_32_bits() -> None:
    assert ber.decode_oid(ber.oid_body((1, 3, 0xFFFFFFFF)))[-1] == 0xFFFFFFFF
    _reject(ber.oid_body((1, 3, 0x100000000)))
    _reject(b"\x2b\x80\x01")  # a leading 0x80 octet pads an arc (X.690 8.19.2)
    _reject(b"\x2b\x81")  # ends inside an arc
    _reject(b"")


def test_lengths_must_be_definite_and_inside_the_buffer() -> None:
    for bad in (
        b"\x30\x80\x02\x01\x00\x00\x00",  # indefinite length
        b"\x30\x85\x00\x00\x00\x00\x01\x00",  # five length octets
        b"\x30\x82\x01",  # length octets cut short
        b"\x30\x05\x02\x01",  # content runs past the end
        b"\x1f\x81\x01\x00",  # high tag number form: not SNMP
    ):
        with pytest.raises(ber.BerError):
            ber.header(bad, 0)
    assert ber.header(b"\x30\x82\x00\x01\x05", 0) == (0x30, 4, 5)


def test_integers_are_bounded() -> None:
    assert ber.decode_int(b"\x02\x08" + b"\x7f" + b"\xff" * 7, 2, 10) == 2**63 - 1
    with pytest.raises(ber.BerError):
        ber.decode_int(b"\x02\x09" + b"\x01" * 9, 2, 11)
