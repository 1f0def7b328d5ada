"""The launcher contract (kernelfleet.protocol.contract) against docs/launcher-vectors.json.

The file is written from the contract by tools/make_launcher_vectors.py, so a contract change that is
not carried to the file (and so to the R and Scala launchers, which read only the file) fails here.
The Python launcher's own reading of argv and environment runs the file's cases in
packages/launcher-python/tests/test_contract_vectors.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import make_launcher_vectors
import pytest

from kernelfleet.protocol import PortRange, PortRangeError, contract

VECTORS = json.loads((Path(__file__).parents[3] / "docs" / "launcher-vectors.json").read_text())
PORT_RANGES = VECTORS["port_ranges"]


def test_vectors_file_is_what_the_contract_writes() -> None:
    assert VECTORS == json.loads(json.dumps(make_launcher_vectors.vectors())), (
        "docs/launcher-vectors.json is stale: python tools/make_launcher_vectors.py > docs/launcher-vectors.json"
    )


@pytest.mark.parametrize("case", PORT_RANGES["valid"], ids=lambda c: repr(c["text"]))
def test_valid_port_ranges_are_accepted(case: dict[str, object]) -> None:
    parsed = PortRange.parse(case["text"])  # type: ignore[arg-type]
    assert (parsed.lower, parsed.upper) == (case["lower"], case["upper"])


@pytest.mark.parametrize("case", PORT_RANGES["invalid"], ids=lambda c: c["why"])
def test_invalid_port_ranges_are_refused_with_their_error(case: dict[str, str]) -> None:
    """The launchers' rule (the Python launcher calls PortRange.parse without a minimum size)."""
    with pytest.raises(PortRangeError) as err:
        PortRange.parse(case["text"])
    assert case["error"] in str(err.value)


@pytest.mark.parametrize(
    ("option", "env", "value"),
    [
        (" k-arg ", {"KERNEL_ID": "k-env"}, "k-arg"),
        ("{kernel_id}", {"KERNEL_ID": " k-env "}, "k-env"),
        ("", {"KERNEL_ID": "", "EG_KERNEL_ID": "ignored"}, None),
        (None, {}, None),
    ],
)
def test_pick_prefers_the_option_and_skips_blanks_and_placeholders(
    option: str | None, env: dict[str, str], value: str | None
) -> None:
    assert contract.pick(option, env, contract.KERNEL_ID_INPUT) == value


def test_legacy_names_come_after_the_current_one() -> None:
    spec = contract.RESPONSE_ADDRESS_INPUT
    assert spec.variables == ("RESPONSE_ADDRESS", "EG_RESPONSE_ADDRESS")
    assert contract.pick(None, {"EG_RESPONSE_ADDRESS": "h:2", "RESPONSE_ADDRESS": " "}, spec) == "h:2"
    assert contract.pick(None, {"EG_RESPONSE_ADDRESS": "h:2", "RESPONSE_ADDRESS": "h:1"}, spec) == "h:1"


def test_every_option_names_its_variable() -> None:
    assert contract.OPTION_VARIABLES["--port-range"] == "PORT_RANGE"
    assert contract.PORT_RANGE_INPUT.label == "--port-range / PORT_RANGE"
    assert contract.missing_message(contract.KERNEL_ID_INPUT).startswith("KERNEL_ID is required (give --kernel-id")
