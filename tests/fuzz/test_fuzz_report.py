"""Property-based fuzzing of the response port's input: peek_kernel_id and open_report (v2 and v1 paths).

Properties (fuzz_properties): nothing but ReportError escapes, no secret in any message, a report is only
ever accepted for the pending kernel with sane ports, a sealed report survives no meaningful single-byte
change, and a v1 payload (which anyone with the public key can make) is refused unread while v1 is off.
The test_finding_* tests are the fuzzers' findings on the code this suite was written against.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fuzz_properties import (
    KERNEL_ID,
    LAUNCH_TOKEN,
    PORT_FIELDS,
    budget,
    check_legacy_info,
    check_report_line,
    check_report_mutation,
    check_sealed_info,
    legacy_report,
    nested,
    sealed_report,
    server_key,
    valid_connection_info,
)
from hypothesis import given
from hypothesis import strategies as st

from kernelfleet.protocol import ReportError, open_report, peek_kernel_id, seal_report

FAST = budget(500)
RSA_BOUND = budget(200)

# Lone surrogates too: JSON can carry them and json.loads keeps them (test_finding_report_lone_surrogate).
surrogates = st.text(st.characters(min_codepoint=0xD7FF, max_codepoint=0xE000, exclude_categories=()), max_size=3)
json_leaves = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
               | surrogates)
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12) | st.builds(
    nested, json_leaves, st.lists(st.booleans(), min_size=10, max_size=40))  # around the 16-level bound
envelope_fields = st.sampled_from(["protocol", "version", "kernel_id", "key", "iv", "ciphertext", "mac", "other"])


def envelope_lines() -> st.SearchStrategy[bytes]:
    """A sealed report's envelope with fields replaced by JSON values, dropped, or given odd base64."""
    base = json.loads(sealed_report())

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        envelope = dict(base)
        for field in draw(st.lists(envelope_fields, max_size=4)):
            choice = draw(st.integers(0, 3))
            if choice == 0:
                envelope.pop(field, None)
            elif choice == 1:
                envelope[field] = draw(json_values)
            elif choice == 2:
                envelope[field] = base64.b64encode(draw(st.binary(max_size=300))).decode()
            else:
                envelope[field] = draw(st.text(alphabet="ABCxyz019+/=\n -", max_size=40))
        return json.dumps(envelope).encode() + draw(st.sampled_from([b"", b"\n", b" \r\n"]))

    return build()


@FAST
@given(st.binary(max_size=2048))
def test_any_bytes_are_refused_cleanly(line: bytes) -> None:
    check_report_line(line, accept_v1=False)
    check_report_line(line, accept_v1=True)


@FAST
@given(st.text(max_size=400).map(str.encode))
def test_any_text_is_refused_cleanly(line: bytes) -> None:
    check_report_line(line, accept_v1=True)


@RSA_BOUND
@given(envelope_lines())
def test_reshaped_envelopes_are_refused_cleanly(line: bytes) -> None:
    check_report_line(line)


@RSA_BOUND
@given(st.integers(min_value=0), st.integers(0, 255))
def test_single_byte_mutations_of_a_sealed_report_are_refused(position: int, value: int) -> None:
    check_report_mutation(position, value)


def test_every_position_of_a_sealed_report_is_guarded() -> None:
    """Exhaustive over positions, one changed bit each: the random tests may miss a position, this cannot."""
    line = sealed_report()
    for position in range(len(line)):
        check_report_mutation(position, line[position] ^ 0x01)


connection_info = st.fixed_dictionaries({}, optional={
    **{name: st.integers(-5, 70000) | st.text(max_size=8) | json_leaves for name in PORT_FIELDS},
    "key": json_values, "comm_key": json_values, "launch_token": st.just(LAUNCH_TOKEN) | json_leaves,
    "transport": json_values, "signature_scheme": json_values, "ip": json_values,
    "pid": json_values, "pgid": json_values, "launcher": json_values, "kernel_id": st.just(KERNEL_ID) | json_leaves,
})


@RSA_BOUND
@given(connection_info, st.booleans())
def test_sealed_connection_info_of_any_shape(partial: dict[str, Any], start_valid: bool) -> None:
    info = {**valid_connection_info(), **partial} if start_valid else partial
    check_sealed_info(info)


@RSA_BOUND
@given(connection_info, st.booleans())
def test_v1_payloads_of_any_shape(partial: dict[str, Any], start_valid: bool) -> None:
    info = {**valid_connection_info(kernel_id=KERNEL_ID), **partial} if start_valid else partial
    check_legacy_info(info)


# ------------------------------------------------------------------------------------------------ findings
def test_finding_report_deep_json_nesting() -> None:
    """A report line of nested arrays (well under the 64 KiB cap) raised RecursionError from peek_kernel_id
    and open_report, before any authentication; the broker lets it escape its connection's task."""
    line = b'{"kernel_id":' + b"[" * 50_000 + b"}\n"
    assert peek_kernel_id(line) is None
    with pytest.raises(ReportError):
        open_report(line, server_key(), expected_token=lambda _kid: LAUNCH_TOKEN)


def test_finding_report_kernel_id_with_trailing_newline() -> None:
    """KERNEL_ID_PATTERN ends in '$', so 'id\\n' passed as a protocol kernel id (peek, open, seal)."""
    line = json.dumps({"protocol": "kernelfleet", "version": 2, "kernel_id": f"{KERNEL_ID}\n"}).encode()
    assert peek_kernel_id(line) is None
    with pytest.raises(ValueError, match="kernel id"):
        seal_report(valid_connection_info(), kernel_id=f"{KERNEL_ID}\n", public_key_b64=server_key().public_key_b64)


def test_finding_report_non_ascii_digit_port() -> None:
    """A port written as '²' passes str.isdigit() but not int(): ValueError (not ReportError) escapes
    open_report. Reachable without any secret through a v1 payload when v1 reports are accepted."""
    line = legacy_report(valid_connection_info(kernel_id=KERNEL_ID, shell_port="\u00b2"))
    with pytest.raises(ReportError, match="shell_port"):
        open_report(line, server_key(), expected_token=lambda _kid: LAUNCH_TOKEN, accept_v1=True)


def test_finding_report_infinite_pid() -> None:
    """A pid of 1e999 (or Infinity) decodes to inf; int(inf) raises OverflowError, which escapes open_report
    (through a v1 payload without any secret when v1 is accepted; in v2 from the kernel's own launcher)."""
    line = legacy_report(valid_connection_info(kernel_id=KERNEL_ID, pid=float("inf")))
    report = open_report(line, server_key(), expected_token=lambda _kid: LAUNCH_TOKEN, accept_v1=True)
    assert report.pid is None


@pytest.mark.parametrize("field", ["key", "launch_token"])
def test_finding_report_lone_surrogate(field: str) -> None:
    """JSON can carry a lone surrogate ('\\ud800'), which json.loads keeps and UTF-8 cannot encode: a v2 report's
    launch_token (no secret needed, only the public key) or key made open_report raise UnicodeEncodeError."""
    line = seal_report(valid_connection_info(**{field: "\ud800"}), kernel_id=KERNEL_ID,
                       public_key_b64=server_key().public_key_b64)
    with pytest.raises(ReportError):
        open_report(line, server_key(), expected_token=lambda _kid: LAUNCH_TOKEN)


@pytest.mark.parametrize("pid", [0, -1, 2**31, 4242.5, float("nan"), "9" * 5000, True])
def test_finding_report_pid_is_a_process_id_or_none(pid: object) -> None:
    """pid/pgid are process ids (signals go to them) or None; a 5,000-digit string made int() raise ValueError."""
    report = check_report_line(seal_report(valid_connection_info(pid=pid, pgid=pid), kernel_id=KERNEL_ID,
                                           public_key_b64=server_key().public_key_b64))
    assert report is not None and report.pid is None and report.pgid is None


def test_finding_report_long_digit_port() -> None:
    """A port of 5,000 ASCII digits passed isdigit() and made int() raise ValueError (Python's digit limit)."""
    line = seal_report(valid_connection_info(shell_port="9" * 5000), kernel_id=KERNEL_ID,
                       public_key_b64=server_key().public_key_b64)
    with pytest.raises(ReportError, match="shell_port"):
        open_report(line, server_key(), expected_token=lambda _kid: LAUNCH_TOKEN)
