"""Deeply nested JSON before authentication (issue 12, item 8): every protocol parser answers with its own
error, never RecursionError. json.loads recurses once per bracket, so a 4 KiB comm line or a 64 KiB
report of brackets used to escape the parsers' error handling (the broker's and the Python comm server's)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from kernelfleet.protocol import CommProtocolError, ReportError, ServerKey, open_report, peek_kernel_id
from kernelfleet.protocol.comm import parse_greeting, parse_reply, verify_request
from kernelfleet.protocol.encoding import MAX_JSON_DEPTH, DecodeError, json_nesting_exceeds, loads_object


def nested(depth: int, opening: bytes = b"[", closing: bytes = b"]") -> bytes:
    return b'{"a":' + opening * depth + closing * depth + b"}"


def test_depth_limit_is_exact_and_ignores_brackets_in_strings() -> None:
    assert not json_nesting_exceeds(nested(MAX_JSON_DEPTH - 1))  # plus the outer object: exactly the limit
    assert json_nesting_exceeds(nested(MAX_JSON_DEPTH))
    assert loads_object(b'{"s":"' + b"[" * 5000 + b'","t":"\\"{{{{"}', "x")["s"] == "[" * 5000
    assert not json_nesting_exceeds(b"[" + b"[[]]," * 3000 + b"[]]")  # wide, shallow: fine


@pytest.mark.parametrize("line", [b"[" * 100_000, nested(50_000), nested(20_000, b"{\"k\":", b"}"),
                                  b'{"a":' + b"[" * 60_000 + b"\n"])
def test_loads_object_refuses_deep_nesting_with_decode_error(line: bytes) -> None:
    with pytest.raises(DecodeError, match="nested at most"):
        loads_object(line, "report")
    with pytest.raises(DecodeError, match="nested at most"):
        loads_object(line.decode(), "report")


def test_report_parsers_refuse_deep_nesting() -> None:
    line = b'{"protocol":"kernelfleet","version":2,"kernel_id":"k1","x":' + b"[" * 60_000 + b"\n"
    assert peek_kernel_id(line) is None
    with pytest.raises(ReportError, match="nested at most"):
        open_report(line, ServerKey.generate(), expected_token=lambda _kid: "token")


@pytest.mark.parametrize("parse", [parse_greeting, parse_reply,
                                   lambda line: verify_request(b"k" * 32, b"n" * 32, line)])
def test_comm_parsers_refuse_deep_nesting(parse: Callable[[bytes], object]) -> None:
    with pytest.raises(CommProtocolError):
        parse(b'{"request":' + b"[" * 4000 + b"\n")
