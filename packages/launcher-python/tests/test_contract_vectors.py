"""The Python launcher reads argv and environment as docs/launcher-vectors.json says (the R and Scala launchers
run the same cases: launchers/r/tests/test_contract.R, launchers/scala/test/.../ContractCheck.scala)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kernelfleet.launcher import ports, report
from kernelfleet.launcher.config import ConfigError, LauncherConfig, load_config
from kernelfleet.protocol.ports import PortRange

VECTORS = json.loads((Path(__file__).parents[3] / "docs" / "launcher-vectors.json").read_text())


def run_case(case: dict[str, Any], tmp_path: Path) -> LauncherConfig:
    env = dict(case["env"])
    if "token_file" in case:
        token_file = tmp_path / "launch-token"
        token_file.write_text(case["token_file"])
        env["LAUNCH_TOKEN_FILE"] = str(token_file)
    return load_config(case["argv"], env)


def observed(config: LauncherConfig) -> dict[str, Any]:
    return {
        "kernel_id": config.kernel_id,
        "response_host": config.response_address.host,
        "response_port": config.response_address.port,
        "public_key": config.public_key,
        "port_range": [config.port_range.lower, config.port_range.upper],
        "spark_init_mode": config.spark_init_mode,
        "kernel_ip": config.kernel_ip,
        "launch_token": config.launch_token,
    }


@pytest.mark.parametrize("case", [c for c in VECTORS["resolve"] if "expect" in c], ids=lambda c: c["why"])
def test_resolves_like_the_contract(case: dict[str, Any], tmp_path: Path) -> None:
    assert observed(run_case(case, tmp_path)) == case["expect"]


@pytest.mark.parametrize("case", [c for c in VECTORS["resolve"] if "error" in c], ids=lambda c: c["why"])
def test_refuses_like_the_contract(case: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        run_case(case, tmp_path)
    for phrase in case["error"]:
        assert phrase in str(err.value)


@pytest.mark.parametrize("case", VECTORS["port_ranges"]["invalid"], ids=lambda c: c["why"])
def test_port_range_errors_name_the_input(case: dict[str, str]) -> None:
    env = {"KERNEL_ID": "k", "RESPONSE_ADDRESS": "h:1", "PUBLIC_KEY": "QUJD", "LAUNCH_TOKEN": "t"}
    with pytest.raises(ConfigError) as err:
        load_config([f"--port-range={case['text']}"], env)
    assert str(err.value).startswith("--port-range / PORT_RANGE: ") and case["error"] in str(err.value)


def test_retry_counts_and_timeouts_are_the_contracts() -> None:
    assert (ports.PORT_COUNT, ports.TRIES_PER_PORT) == (VECTORS["ports"]["count"], VECTORS["ports"]["tries_per_port"])
    assert (report.REPORT_CONNECT_WINDOW, report.REPORT_CONNECT_TIMEOUT, report.REPORT_REPLY_TIMEOUT) == (
        VECTORS["report"]["connect_window"], VECTORS["report"]["connect_timeout"], VECTORS["report"]["reply_timeout"]
    )


def test_a_full_range_fails_after_the_contracts_tries() -> None:
    holder = ports.bind_ports("127.0.0.1", PortRange(), count=1)[0]
    try:
        taken = ports.port_of(holder)
        with pytest.raises(ports.PortError, match=f"after {VECTORS['ports']['tries_per_port']} tries"):
            ports.bind_ports("127.0.0.1", PortRange(taken, taken), count=1)
    finally:
        holder.close()
