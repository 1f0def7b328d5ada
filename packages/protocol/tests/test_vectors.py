"""The Python implementation against docs/protocol-vectors.json (the R and Scala launchers use the same file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernelfleet.protocol import (
    CommOp,
    CommProtocolError,
    ReportError,
    ServerKey,
    greeting,
    open_report,
    parse_greeting,
    seal_report,
    sign_request,
    verify_request,
)
from kernelfleet.protocol.constants import KERNEL_ID_PATTERN

VECTORS = json.loads((Path(__file__).parents[3] / "docs" / "protocol-vectors.json").read_text())
REPORT = VECTORS["report"]
COMM = VECTORS["comm"]


@pytest.fixture(scope="module")
def server_key() -> ServerKey:
    return ServerKey.from_pem(VECTORS["server_private_key_pem"])


def test_public_key_matches_private_key(server_key: ServerKey) -> None:
    assert server_key.public_key_b64 == VECTORS["public_key"]


def test_seal_reproduces_the_report_line_byte_for_byte() -> None:
    seed = bytes.fromhex(REPORT["oaep_seed_hex"])
    line = seal_report(
        json.loads(REPORT["plaintext"]),
        kernel_id=REPORT["kernel_id"],
        public_key_b64=VECTORS["public_key"],
        aes_key=bytes.fromhex(REPORT["aes_key_hex"]),
        mac_key=bytes.fromhex(REPORT["mac_key_hex"]),
        iv=bytes.fromhex(REPORT["iv_hex"]),
        oaep_randfunc=lambda n: seed[:n],
    )
    assert line.decode() == REPORT["line"] + "\n"


def test_open_recovers_connection_info(server_key: ServerKey) -> None:
    report = open_report(REPORT["line"].encode(), server_key, expected_token=lambda _k: REPORT["launch_token"])
    plain = json.loads(REPORT["plaintext"])
    assert report.kernel_id == REPORT["kernel_id"]
    assert report.comm_port == plain["comm_port"]
    assert report.comm_key == bytes.fromhex(COMM["comm_key_hex"])
    assert report.connection_info["key"] == plain["key"].encode()
    assert report.connection_info["shell_port"] == plain["shell_port"]
    assert "launch_token" not in report.connection_info and "comm_key" not in report.connection_info
    assert (report.pid, report.pgid) == (plain["pid"], plain["pgid"])


@pytest.mark.parametrize("case", [c for c in VECTORS["reject"] if "line" in c], ids=lambda c: c["why"])
def test_reject_vectors_are_refused(server_key: ServerKey, case: dict[str, str]) -> None:
    token = case.get("launch_token", REPORT["launch_token"])
    with pytest.raises(ReportError) as err:
        open_report(case["line"].encode(), server_key, expected_token=lambda _k: token)
    assert err.value.kernel_id == REPORT["kernel_id"]


def test_report_for_a_kernel_nobody_waits_for_is_refused(server_key: ServerKey) -> None:
    with pytest.raises(ReportError, match="no launch is waiting"):
        open_report(REPORT["line"].encode(), server_key, expected_token=lambda _k: None)


def test_random_sealing_round_trips(server_key: ServerKey) -> None:
    info = json.loads(REPORT["plaintext"])
    line = seal_report(info, kernel_id=REPORT["kernel_id"], public_key_b64=server_key.public_key_b64)
    assert line != REPORT["line"].encode() + b"\n"
    report = open_report(line, server_key, expected_token=lambda _k: REPORT["launch_token"])
    assert report.connection_info["hb_port"] == info["hb_port"]


def test_comm_vectors() -> None:
    key, nonce = bytes.fromhex(COMM["comm_key_hex"]), bytes.fromhex(COMM["nonce_hex"])
    line, got_nonce = greeting(nonce)
    assert line.decode() == COMM["greeting"] + "\n" and got_nonce == nonce
    assert parse_greeting(line) == nonce
    for case in COMM["requests"]:
        signed = sign_request(key, nonce, CommOp(case["op"]), **case["params"])
        assert signed.decode() == case["line"] + "\n"
        op, params = verify_request(key, nonce, signed)
        assert (op.value, params) == (case["op"], case["params"])


def test_comm_request_for_another_nonce_is_refused() -> None:
    key, nonce = bytes.fromhex(COMM["comm_key_hex"]), bytes.fromhex(COMM["nonce_hex"])
    (case,) = [c for c in VECTORS["reject"] if "comm_line" in c]
    with pytest.raises(CommProtocolError, match="MAC"):
        verify_request(key, nonce, case["comm_line"].encode())


@pytest.mark.parametrize(
    "line",
    [b"", b"not json\n", b"[]\n", b'{"request":"{\\"op\\":\\"kill\\"}"}\n', b'{"request":5,"mac":"AA=="}\n',
     b"x" * 10_000],
)
def test_malformed_comm_requests_are_refused(line: bytes) -> None:
    with pytest.raises(CommProtocolError):
        verify_request(b"k" * 32, b"n" * 32, line)


def test_unknown_op_is_refused_even_when_signed() -> None:
    from kernelfleet.protocol.comm import comm_mac
    from kernelfleet.protocol.encoding import b64encode, dumps_line

    key, nonce = b"k" * 32, b"n" * 32
    request = json.dumps({"op": "exec", "cmd": "rm -rf /"})
    line = dumps_line({"request": request, "mac": b64encode(comm_mac(key, nonce, request.encode()))})
    with pytest.raises(CommProtocolError, match="no known op"):
        verify_request(key, nonce, line)


KERNEL_IDS = VECTORS["kernel_ids"]


@pytest.mark.parametrize("kernel_id", KERNEL_IDS["valid"])
def test_valid_kernel_ids_are_accepted(kernel_id: str) -> None:
    assert KERNEL_ID_PATTERN.match(kernel_id)


@pytest.mark.parametrize("case", KERNEL_IDS["invalid"], ids=lambda c: c["why"])
def test_invalid_kernel_ids_are_refused(server_key: ServerKey, case: dict[str, str]) -> None:
    assert not KERNEL_ID_PATTERN.match(case["id"])
    with pytest.raises(ValueError, match="not a valid protocol kernel id"):
        seal_report(json.loads(REPORT["plaintext"]), kernel_id=case["id"], public_key_b64=server_key.public_key_b64)
