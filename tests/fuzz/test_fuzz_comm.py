"""Property-based fuzzing of the comm port: the protocol's parsers, and the Python launcher's comm server
handling one line from a real socket.

The server runs on its own reactor thread on a real loopback socket, with a recorder in place of the
supervisor's actions (the comm server's job is to decide whether to ask for an action; asking is what is
checked). Properties: every line gets exactly one reply line; only a request MACed for that connection's
nonce with the comm key causes an action, exactly once; everything else is answered ok:false and causes
nothing.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from comm_recorder import ServedCommServer
from fuzz_properties import (
    COMM_KEY,
    KERNEL_ID,
    budget,
    check_comm_line,
    check_signed_request,
    comm_line,
    nested,
    signed,
)
from hypothesis import given
from hypothesis import strategies as st

from kernelfleet.protocol import CommOp, CommProtocolError, parse_greeting, parse_reply, verify_request
from kernelfleet.protocol.signals import ALLOWED_SIGNALS

PARSERS = budget(500)
STRUCTURED = budget(200)
SOCKETS = budget(200)

json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10) | st.builds(
    nested, json_leaves, st.lists(st.booleans(), min_size=10, max_size=40))  # around the 16-level bound


@PARSERS
@given(st.binary(max_size=4200))
def test_parsers_on_any_bytes(line: bytes) -> None:
    check_comm_line(line)


@STRUCTURED
@given(st.dictionaries(st.sampled_from(["request", "mac", "ok", "protocol", "version", "nonce", "x"]), json_values))
def test_parsers_on_any_json_object(obj: dict[str, Any]) -> None:
    check_comm_line(json.dumps(obj).encode() + b"\n")


@STRUCTURED
@given(json_values | st.dictionaries(st.just("op"), st.text(max_size=10) | json_leaves).map(
    lambda d: {**d, "grace": 1.5}))
def test_signed_requests_of_any_body(body: Any) -> None:
    check_signed_request(body)


# ------------------------------------------------------------------------------------------------ the server
class ServedCommPort(ServedCommServer):
    """A CommServer on 127.0.0.1, served by its reactor on its own thread for the whole module."""

    def __init__(self) -> None:
        super().__init__(KERNEL_ID, COMM_KEY)

    def exchange(self, line: bytes | None = None, *, sign: CommOp | None = None, **params: Any) -> tuple[bytes, bytes]:
        """Connect, read the greeting, send ``line`` (or a request signed for this connection), return
        (greeting, the whole rest of the conversation until the server closed)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as conn:
            reader = conn.makefile("rb")
            greeting = reader.readline()
            if sign is not None:
                line = signed(sign, parse_greeting(greeting), **params)
            assert line is not None
            conn.sendall(line)
            conn.shutdown(socket.SHUT_WR)
            return greeting, reader.read()


@pytest.fixture(scope="module")
def comm_port() -> Iterator[ServedCommPort]:
    served = ServedCommPort()
    yield served
    served.close()


def one_reply(rest: bytes) -> dict[str, Any]:
    lines = rest.splitlines(keepends=True)
    assert len(lines) == 1 and lines[0].endswith(b"\n"), f"expected one reply line, got {rest[:200]!r}"
    return parse_reply(lines[0])


unsigned_lines = (
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"") + b"\n")
    | st.builds(lambda op, mac: comm_line(json.dumps({"op": op}), nonce=mac), st.sampled_from(list(CommOp)),
                st.binary(min_size=32, max_size=32))  # signed for another connection's nonce
    | json_values.map(lambda v: json.dumps({"request": json.dumps(v), "mac": base64.b64encode(b"m" * 32).decode()})
                      .encode() + b"\n")
)


@SOCKETS
@given(unsigned_lines)
def test_server_refuses_every_unauthenticated_line(comm_port: ServedCommPort, line: bytes) -> None:
    before = list(comm_port.actions.calls)
    _greeting, rest = comm_port.exchange(line)
    answer = one_reply(rest)
    assert answer["ok"] is False and isinstance(answer.get("error"), str)
    assert comm_port.actions.calls == before, "an unauthenticated line caused an action"


@SOCKETS
@given(st.sampled_from(list(CommOp)), st.none() | json_leaves)
def test_server_acts_once_on_each_signed_request(comm_port: ServedCommPort, op: CommOp, grace: Any) -> None:
    before = len(comm_port.actions.calls)
    params = {} if grace is None else {"grace": grace}
    _greeting, rest = comm_port.exchange(sign=op, **params)
    answer = one_reply(rest)
    calls = comm_port.actions.calls[before:]
    grace_ok = grace is None or (type(grace) in (int, float) and grace >= 0)
    if op is CommOp.PING:
        assert answer == {"ok": True, "alive": True} and calls == []
    elif op is CommOp.SIGNAL:  # no signal name: refused (the signal values are the next property's)
        assert answer == {"ok": False, "error": "signal must be a name such as SIGUSR1"} and calls == []
    elif op is CommOp.SHUTDOWN and not grace_ok:
        assert answer["ok"] is False and calls == []
    else:
        assert answer["ok"] is True and len(calls) == 1 and calls[0].split()[0] == op.value
        if op is CommOp.SHUTDOWN:
            assert 0 <= float(calls[0].split()[1]) <= 60


@SOCKETS
@given(st.sampled_from(ALLOWED_SIGNALS) | json_leaves | st.text(alphabet="SIGINTUSRHPQKL12 ", max_size=8))
def test_server_carries_only_allowed_signal_names(comm_port: ServedCommPort, value: Any) -> None:
    """Protocol 2.2's signal op: one delivery for an allowed name, none for anything else (numbers included)."""
    before = len(comm_port.actions.calls)
    _greeting, rest = comm_port.exchange(sign=CommOp.SIGNAL, signal=value)
    answer = one_reply(rest)
    calls = comm_port.actions.calls[before:]
    if isinstance(value, str) and value in ALLOWED_SIGNALS:
        assert answer == {"ok": True, "alive": True} and calls == [f"signal {value}"]
    else:
        assert answer["ok"] is False and calls == []


# ------------------------------------------------------------------------------------------------ findings
DEEP = b'{"request":' + b"[" * 3000 + b"\n"


def test_finding_comm_parsers_deep_json_nesting() -> None:
    """A 3 KiB line of nested arrays (under the 4 KiB cap) raised RecursionError from verify_request,
    parse_greeting and parse_reply instead of CommProtocolError."""
    for parse in (parse_greeting, parse_reply, lambda line: verify_request(COMM_KEY, b"n" * 32, line)):
        with pytest.raises(CommProtocolError):
            parse(DEEP)


def test_finding_comm_server_deep_json_nesting(comm_port: ServedCommPort) -> None:
    """The same line sent to the launcher's comm server before any authentication: the RecursionError
    escaped the connection handler (asyncio logged it as unhandled) and the peer got no reply at all."""
    _greeting, rest = comm_port.exchange(DEEP)
    assert one_reply(rest) == {"ok": False, "error": "unauthenticated"}
