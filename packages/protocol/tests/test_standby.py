"""Protocol 2.1's standby messages against docs/protocol-vectors-2.1.json, and the refusals section 8 demands:
a claim without the standby's key, for another pool or standby, replayed, or a second one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernelfleet.protocol import ReportError, ServerKey
from kernelfleet.protocol.standby import (
    Claim,
    ClaimError,
    ClaimVerifier,
    Registration,
    open_registration,
    peek_standby_id,
    seal_claim,
    seal_registration,
)

VECTORS = json.loads((Path(__file__).parents[3] / "docs" / "protocol-vectors-2.1.json").read_text())
REG = VECTORS["registration"]
CLAIM = VECTORS["claim"]


@pytest.fixture(scope="module")
def server_key() -> ServerKey:
    return ServerKey.from_pem(VECTORS["server_private_key_pem"])


def verifier(**overrides: object) -> ClaimVerifier:
    fields: dict[str, object] = {"standby_id": REG["standby_id"], "pool": REG["pool"],
                                 "claim_key": bytes.fromhex(REG["claim_key_hex"]),
                                 "nonce": bytes.fromhex(REG["nonce_hex"])}
    fields.update(overrides)
    return ClaimVerifier(**fields)  # type: ignore[arg-type]


def test_registration_line_is_reproduced_byte_for_byte() -> None:
    seed = bytes.fromhex(REG["oaep_seed_hex"])
    line = seal_registration(
        standby_id=REG["standby_id"], pool=REG["pool"], token=REG["token"],
        claim_key=bytes.fromhex(REG["claim_key_hex"]), nonce=bytes.fromhex(REG["nonce_hex"]),
        public_key_b64=VECTORS["public_key"], pid=REG["pid"], launcher=REG["launcher"],
        aes_key=bytes.fromhex(REG["aes_key_hex"]), mac_key=bytes.fromhex(REG["mac_key_hex"]),
        iv=bytes.fromhex(REG["iv_hex"]), oaep_randfunc=lambda n: seed[:n])
    assert line.decode() == REG["line"] + "\n"


def test_registration_opens_with_the_pending_token(server_key: ServerKey) -> None:
    line = REG["line"].encode()
    assert peek_standby_id(line) == REG["standby_id"]
    registration = open_registration(line, server_key, expected=lambda sid: (REG["pool"], REG["token"]))
    assert (registration.standby_id, registration.pool, registration.pid) == (REG["standby_id"], REG["pool"], 4242)
    assert registration.claim_key == bytes.fromhex(REG["claim_key_hex"])
    assert "claim_key" not in repr(registration) and REG["claim_key_hex"] not in repr(registration)


@pytest.mark.parametrize(("expected", "message"), [
    (lambda sid: None, "no standby with this id"),
    (lambda sid: (REG["pool"], "another-token"), "token does not match"),
    (lambda sid: ("another-pool", REG["token"]), "another standby or pool"),
], ids=["not expected", "wrong token", "other pool"])
def test_registration_refusals(server_key: ServerKey, expected: object, message: str) -> None:
    with pytest.raises(ReportError, match=message) as err:
        open_registration(REG["line"].encode(), server_key, expected=expected)  # type: ignore[arg-type]
    assert err.value.kernel_id == REG["standby_id"]


def test_a_report_is_not_a_registration() -> None:
    v2 = json.loads((Path(__file__).parents[3] / "docs" / "protocol-vectors.json").read_text())
    report_line = v2["report"]["line"]
    assert peek_standby_id(report_line.encode()) is None


def test_claim_vector_opens_once_and_is_refused_when_replayed() -> None:
    standby = verifier()
    claim = standby.open(CLAIM["line"].encode())
    assert (claim.kernel_id, claim.working_dir, claim.port_range) == (CLAIM["kernel_id"], CLAIM["working_dir"], "0..0")
    assert claim.env == CLAIM["env"] and claim.launch_token == CLAIM["launch_token"]
    with pytest.raises(ClaimError, match="claimed already"):
        standby.open(CLAIM["line"].encode())  # the same claim replayed
    with pytest.raises(ClaimError, match="claimed already"):
        standby.open(seal_claim(Claim("k2", "t", {}, None, "0..0"), _registration()))  # a second, valid claim


def _registration() -> Registration:
    return Registration(REG["standby_id"], REG["pool"], bytes.fromhex(REG["claim_key_hex"]),
                        bytes.fromhex(REG["nonce_hex"]))


@pytest.mark.parametrize("case", VECTORS["reject_claims"], ids=lambda c: c["why"])
def test_reject_vectors_are_refused_and_leave_the_standby_unclaimed(case: dict[str, str]) -> None:
    standby = verifier()
    with pytest.raises(ClaimError):
        standby.open(case["line"].encode())
    assert not standby.claimed
    assert standby.open(CLAIM["line"].encode()).kernel_id == CLAIM["kernel_id"]  # the real claim still works


def test_a_claim_for_one_standby_is_refused_by_another() -> None:
    other = verifier(standby_id="standby-other")
    with pytest.raises(ClaimError, match="another pool or standby"):
        other.open(CLAIM["line"].encode())


@pytest.mark.parametrize("env", [{"LAUNCH_TOKEN": "x"}, {"A=B": "x"}, {"X": "a\x00b"}, {"X": 1}])
def test_claim_env_is_checked(env: dict[str, object]) -> None:
    line = seal_claim(Claim("k1", "tok", env, None, "0..0"), _registration())  # type: ignore[arg-type]
    with pytest.raises(ClaimError, match="env"):
        verifier().open(line)


def test_claim_secrets_stay_out_of_repr() -> None:
    claim = Claim("k1", "secret-token-value", {"KERNEL_SECRET": "hidden-value"}, None, "0..0")
    assert "secret-token-value" not in repr(claim) and "hidden-value" not in repr(claim)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048) | st.builds(lambda d: json.dumps(d).encode(), st.dictionaries(
    st.sampled_from(["protocol", "version", "minor", "pool", "standby_id", "iv", "ciphertext", "mac"]),
    st.one_of(st.none(), st.integers(), st.text(max_size=40), st.lists(st.integers(), max_size=3)))))
def test_any_claim_line_is_refused_with_a_claim_error(line: bytes) -> None:
    """Whatever arrives on a standby's connection, the standby refuses it cleanly (never another exception)."""
    with pytest.raises(ClaimError):
        verifier().open(line)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=2048))
def test_any_registration_line_is_refused_with_a_report_error(server_key: ServerKey, line: bytes) -> None:
    peek_standby_id(line)  # never raises
    with pytest.raises(ReportError):
        open_registration(line, server_key, expected=lambda sid: (REG["pool"], REG["token"]))
