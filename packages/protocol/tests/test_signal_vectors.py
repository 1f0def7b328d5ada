"""Protocol 2.2's signal op against docs/protocol-vectors-2.2.json: the file is what the allow-list writes, every
accepted line verifies to its name, and every refused line verifies (it is authentic) but names no allowed signal.
The R and Scala launchers check the same file (launchers/r/tests/test_vectors.R, VectorCheck.scala)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import make_signal_vectors
import pytest

from kernelfleet.protocol.comm import CommOp, verify_request
from kernelfleet.protocol.signals import ALLOWED_SIGNALS, OWN_OPS, SignalRefused, checked_signal_name

VECTORS = json.loads((Path(__file__).parents[3] / "docs" / "protocol-vectors-2.2.json").read_text())
KEY, NONCE = bytes.fromhex(VECTORS["comm_key_hex"]), bytes.fromhex(VECTORS["nonce_hex"])


def test_vectors_file_is_what_the_allow_list_writes() -> None:
    assert VECTORS == json.loads(json.dumps(make_signal_vectors.vectors())), (
        "docs/protocol-vectors-2.2.json is stale: python tools/make_signal_vectors.py > docs/protocol-vectors-2.2.json"
    )
    v2 = json.loads((Path(__file__).parents[3] / "docs" / "protocol-vectors.json").read_text())
    assert (VECTORS["comm_key_hex"], VECTORS["nonce_hex"]) == (v2["comm"]["comm_key_hex"], v2["comm"]["nonce_hex"])


@pytest.mark.parametrize("case", VECTORS["accept"], ids=lambda c: c["signal"])
def test_allowed_signals_verify_by_name(case: dict[str, Any]) -> None:
    op, params = verify_request(KEY, NONCE, case["line"].encode() + b"\n")
    assert (op, params) == (CommOp.SIGNAL, {"signal": case["signal"]})
    assert checked_signal_name(params["signal"]) == case["signal"]


@pytest.mark.parametrize("case", VECTORS["refuse"], ids=lambda c: c["why"])
def test_refused_signals_are_authentic_but_not_carried(case: dict[str, Any]) -> None:
    op, params = verify_request(KEY, NONCE, case["line"].encode() + b"\n")
    assert op is CommOp.SIGNAL and params == case["params"]
    with pytest.raises(SignalRefused) as refused:
        checked_signal_name(params.get("signal"))
    assert str(refused.value) == case["error"]


def test_no_signal_with_an_op_of_its_own_is_allowed() -> None:
    assert not set(OWN_OPS) & set(ALLOWED_SIGNALS)
    assert {str(case["params"].get("signal")) for case in VECTORS["refuse"]} >= set(OWN_OPS)
