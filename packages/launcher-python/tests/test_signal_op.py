"""The Python launcher's comm server answers protocol 2.2's signal vectors (docs/protocol-vectors-2.2.json) as the
R and Scala launchers must: an allowed name reaches the supervisor's ``deliver``, anything else is answered with the
vector's error and never acted on. ``CommServer.answer`` takes the connection's nonce, so the vectors' fixed nonce
and lines are used as they are."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from comm_recorder import ServedCommServer

VECTORS = json.loads((Path(__file__).parents[3] / "docs" / "protocol-vectors-2.2.json").read_text())
NONCE = bytes.fromhex(VECTORS["nonce_hex"])


@pytest.fixture
def served() -> Iterator[ServedCommServer]:
    served = ServedCommServer("k-signals", key=bytes.fromhex(VECTORS["comm_key_hex"]))
    yield served
    served.close()


@pytest.mark.parametrize("case", VECTORS["accept"], ids=lambda c: c["signal"])
def test_an_allowed_signal_is_delivered_by_name(served: ServedCommServer, case: dict[str, Any]) -> None:
    answer = served.server.answer(NONCE, case["line"].encode() + b"\n", ("127.0.0.1", 1))
    assert answer == b'{"ok":true,"alive":true}\n'
    assert served.actions.calls == [f"signal {case['signal']}"]


@pytest.mark.parametrize("case", VECTORS["refuse"], ids=lambda c: c["why"])
def test_a_refused_signal_is_answered_with_its_error(served: ServedCommServer, case: dict[str, Any]) -> None:
    answer = served.server.answer(NONCE, case["line"].encode() + b"\n", ("127.0.0.1", 1))
    assert json.loads(answer) == {"ok": False, "error": case["error"]}
    assert served.actions.calls == []
