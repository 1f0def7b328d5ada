"""PORT_RANGE and RESPONSE_ADDRESS parsing, shared by server validation and the launchers."""

from __future__ import annotations

import pytest

from kernelfleet.protocol import PortRange, PortRangeError, ResponseAddress


@pytest.mark.parametrize("text", [None, "", "0..0", " 0..0 "])
def test_unrestricted_port_ranges(text: str | None) -> None:
    assert PortRange.parse(text).unrestricted


def test_port_range_bounds_and_size() -> None:
    rng = PortRange.parse("40000..40999", min_size=1000)
    assert (rng.lower, rng.upper, rng.size, str(rng)) == (40000, 40999, 1000, "40000..40999")


@pytest.mark.parametrize(
    ("text", "message"),
    [("40000-41000", "lower..upper"), ("a..b", "whole numbers"), ("80..2000", "1024"),
     ("50000..40000", "lower <= upper"), ("40000..40010", "at least 1000")],
)
def test_bad_port_ranges(text: str, message: str) -> None:
    with pytest.raises(PortRangeError, match=message):
        PortRange.parse(text, min_size=1000)


@pytest.mark.parametrize(
    ("text", "host", "port"), [("10.0.0.5:8877", "10.0.0.5", 8877), ("[::1]:9000", "::1", 9000), ("h:1", "h", 1)]
)
def test_response_addresses(text: str, host: str, port: int) -> None:
    addr = ResponseAddress.parse(text)
    assert (addr.host, addr.port) == (host, port)
    assert ResponseAddress.parse(str(addr)) == addr


@pytest.mark.parametrize("text", ["", "host", "host:", ":80", "host:http", "host:70000"])
def test_bad_response_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="RESPONSE_ADDRESS"):
        ResponseAddress.parse(text)
