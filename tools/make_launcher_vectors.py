"""Write docs/launcher-vectors.json: the launcher contract (docs/protocol.md, section 2) as cases every launcher runs.

The names, defaults, retry counts and timeouts come from ``kernelfleet.protocol.contract``; the cases below say
what a launcher must make of a given argv and environment (precedence, placeholders, ``EG_`` names, the token's
sources, PORT_RANGE and its errors). The Python, R and Scala launchers are each checked against the file
(packages/launcher-python/tests/test_contract_vectors.py, launchers/r/tests/test_contract.R,
launchers/scala/test/.../ContractCheck.scala); packages/protocol/tests/test_contract.py fails when the file is
not what this script writes. Usage: python tools/make_launcher_vectors.py > docs/launcher-vectors.json
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

from kernelfleet.protocol import contract
from kernelfleet.protocol.ports import MAX_PORT, MIN_PORT

MALFORMED = "must look like 'lower..upper'"
BOUNDS = f"need {MIN_PORT} <= lower <= upper <= {MAX_PORT}"
ENV = {contract.KERNEL_ID: "k-env", contract.RESPONSE_ADDRESS: "10.0.0.5:8877", contract.PUBLIC_KEY: "QUJD",
       contract.LAUNCH_TOKEN: "token-env"}
FROM_ENV = {"kernel_id": "k-env", "response_host": "10.0.0.5", "response_port": 8877, "public_key": "QUJD",
            "port_range": [0, 0], "spark_init_mode": "none", "kernel_ip": "0.0.0.0", "launch_token": "token-env"}


def without(*names: str, **extra: str) -> dict[str, str]:
    return {**{k: v for k, v in ENV.items() if k not in names}, **extra}


def port_range_cases() -> dict[str, object]:
    """PORT_RANGE values every launcher must parse alike (docs/protocol.md section 5): ``lower..upper`` of
    ASCII digits, blanks only around the whole value. The invalid ones passed int()/toInt/as.integer once;
    ``error`` is the phrase each launcher's message must contain."""
    def bad(why: str, text: str, error: str = MALFORMED) -> dict[str, str]:
        return {"why": why, "text": text, "error": error}

    return {
        "valid": [
            {"text": "40000..41000", "lower": 40000, "upper": 41000},
            {"text": " 40000..41000\n", "lower": 40000, "upper": 41000},
            {"text": "1024..65535", "lower": 1024, "upper": 65535},
            {"text": "01024..01024", "lower": 1024, "upper": 1024},
            {"text": "0..0", "lower": 0, "upper": 0},
            {"text": "", "lower": 0, "upper": 0},
        ],
        "invalid": [
            bad("plus sign", "+1024..2024"),
            bad("minus sign", "-1024..2024"),
            bad("digit-group underscores", "1_024..2_024"),
            bad("non-ASCII digits", "\u0661\u0660\u0662\u0664..\u0662\u0660\u0662\u0664"),
            bad("blanks around '..'", "1024 .. 2024"),
            bad("non-ASCII blank around the value", "\u00a01024..2024"),
            bad("exponent", "1e3..2024"),
            bad("hexadecimal", "0x400..2024"),
            bad("fraction", "1024.5..2024"),
            bad("more than five digits", "001024..2024"),
            bad("three dots", "1024...2024"),
            bad("three ends", "1024..2024..3024"),
            bad("no upper end", "1024.."),
            bad("dash instead of '..'", "1024-2024"),
            bad("below 1024", "1023..2024", BOUNDS),
            bad("above 65535", "1024..65536", BOUNDS),
            bad("lower above upper", "2024..1024", BOUNDS),
        ],
    }


def resolve_cases() -> list[dict[str, Any]]:
    """argv + environment -> the values a launcher runs with, or the phrases its one-line error must contain."""
    port = contract.PORT_RANGE_INPUT.label
    spark = contract.SPARK_MODE_INPUT.label
    return [
        {"why": "environment only: every default", "argv": [], "env": ENV, "expect": FROM_ENV},
        {"why": "an option wins over its variable",
         "argv": ["--kernel-id", "k-arg", "--response-address", "[fd00::1]:9000", "--public-key", "QVJH",
                  "--port-range", "40000..41000", "--spark-context-initialization-mode", "lazy"],
         "env": without(PORT_RANGE="50000..51000", KERNEL_SPARK_CONTEXT_INIT_MODE="eager"),
         "expect": {**FROM_ENV, "kernel_id": "k-arg", "response_host": "fd00::1", "response_port": 9000,
                    "public_key": "QVJH", "port_range": [40000, 41000], "spark_init_mode": "lazy"}},
        {"why": "--option=value", "argv": ["--kernel-id=k-eq", "--port-range=40000..41000"], "env": ENV,
         "expect": {**FROM_ENV, "kernel_id": "k-eq", "port_range": [40000, 41000]}},
        {"why": "Enterprise Gateway's --RemoteProcessProxy. spelling",
         "argv": ["--RemoteProcessProxy.kernel-id", "k-old", "--RemoteProcessProxy.port-range", "40000..41000"],
         "env": ENV, "expect": {**FROM_ENV, "kernel_id": "k-old", "port_range": [40000, 41000]}},
        {"why": "an unfilled {placeholder} counts as unset",
         "argv": ["--kernel-id", "{kernel_id}", "--port-range", "{port_range}", "--response-address",
                  "{response_address}", "--public-key", "{public_key}"],
         "env": without(PORT_RANGE="45000..46000"), "expect": {**FROM_ENV, "port_range": [45000, 46000]}},
        {"why": "a blank option counts as unset", "argv": ["--kernel-id", "  "], "env": ENV, "expect": FROM_ENV},
        {"why": "values are trimmed of blanks (space, tab, CR, LF) only",
         "argv": ["--public-key", "\u00a0QVJH"],
         "env": without(KERNEL_ID=" k-env\t", PORT_RANGE=" 40000..41000\n"),
         "expect": {**FROM_ENV, "public_key": "\u00a0QVJH", "port_range": [40000, 41000]}},
        {"why": "the current name wins over the EG_ name", "argv": [],
         "env": without(EG_RESPONSE_ADDRESS="10.9.9.9:1", EG_PUBLIC_KEY="RUc=", PORT_RANGE="40000..41000",
                        EG_PORT_RANGE="50000..51000"),
         "expect": {**FROM_ENV, "port_range": [40000, 41000]}},
        {"why": "EG_ names when the current one is unset or empty", "argv": [],
         "env": without("PUBLIC_KEY", RESPONSE_ADDRESS="", EG_RESPONSE_ADDRESS="[fd00::1]:9000",
                        EG_PUBLIC_KEY="RUc=", EG_PORT_RANGE="40000..41000"),
         "expect": {**FROM_ENV, "response_host": "fd00::1", "response_port": 9000, "public_key": "RUc=",
                    "port_range": [40000, 41000]}},
        {"why": "spark mode and kernel ip from the environment, any case", "argv": [],
         "env": without(KERNEL_SPARK_CONTEXT_INIT_MODE="Eager", KERNEL_IP="127.0.0.1"),
         "expect": {**FROM_ENV, "spark_init_mode": "eager", "kernel_ip": "127.0.0.1"}},
        {"why": "LAUNCH_TOKEN wins over LAUNCH_TOKEN_FILE (the file is not read)", "argv": [],
         "env": without(LAUNCH_TOKEN_FILE="/nonexistent/kernelfleet-launch-token"), "expect": FROM_ENV},
        {"why": "LAUNCH_TOKEN_FILE when LAUNCH_TOKEN is unset (contents trimmed)", "argv": [],
         "env": without("LAUNCH_TOKEN"), "token_file": "token-from-file\n",
         "expect": {**FROM_ENV, "launch_token": "token-from-file"}},
        {"why": "LAUNCH_TOKEN_FILE when LAUNCH_TOKEN is blank", "argv": [],
         "env": without(LAUNCH_TOKEN="  "), "token_file": "token-from-file",
         "expect": {**FROM_ENV, "launch_token": "token-from-file"}},
        {"why": "no token: refused, naming both variables", "argv": ["--kernel-id", "k-arg"],
         "env": without("LAUNCH_TOKEN"), "error": [contract.LAUNCH_TOKEN, contract.LAUNCH_TOKEN_FILE]},
        {"why": "no kernel id", "argv": [], "env": without("KERNEL_ID"), "error": ["KERNEL_ID", "--kernel-id"]},
        {"why": "only a placeholder for the kernel id", "argv": ["--kernel-id", "{kernel_id}"],
         "env": without("KERNEL_ID"), "error": ["KERNEL_ID", "--kernel-id"]},
        {"why": "no response address", "argv": [], "env": without("RESPONSE_ADDRESS"),
         "error": ["RESPONSE_ADDRESS", "--response-address"]},
        {"why": "no public key", "argv": [], "env": without("PUBLIC_KEY"), "error": ["PUBLIC_KEY", "--public-key"]},
        {"why": "invalid kernel id", "argv": ["--kernel-id", "../etc"], "env": ENV,
         "error": [contract.KERNEL_ID_INPUT.label]},
        {"why": "malformed PORT_RANGE", "argv": [], "env": without(PORT_RANGE="1024 .. 2024"),
         "error": [port, MALFORMED]},
        {"why": "--port-range out of bounds", "argv": ["--port-range", "2024..1024"], "env": ENV,
         "error": [port, BOUNDS]},
        {"why": "unknown spark mode", "argv": [], "env": without(KERNEL_SPARK_CONTEXT_INIT_MODE="sometimes"),
         "error": [spark, ", ".join(contract.SPARK_INIT_MODES)]},
    ]


def vectors() -> dict[str, Any]:
    """The whole file, as a value (the staleness test compares it with the checked-in copy)."""
    return {
        "contract": "kernelfleet launcher inputs",
        "version": 2,
        "about": "What a launcher receives and how it reads it (docs/protocol.md section 2). Written by "
                 "tools/make_launcher_vectors.py from kernelfleet.protocol.contract; checked by every launcher.",
        "inputs": [asdict(spec) for spec in contract.COMMON_INPUTS],
        "legacy_option_prefix": contract.LEGACY_OPTION_PREFIX,
        "spark_init_modes": list(contract.SPARK_INIT_MODES),
        "launch_token": {"variable": contract.LAUNCH_TOKEN, "file_variable": contract.LAUNCH_TOKEN_FILE,
                         "max_file_bytes": contract.MAX_TOKEN_FILE_BYTES},
        "ports": {"count": contract.PORT_COUNT, "tries_per_port": contract.TRIES_PER_PORT,
                  "min": MIN_PORT, "max": MAX_PORT},
        "report": {"connect_window": contract.REPORT_CONNECT_WINDOW,
                   "connect_timeout": contract.REPORT_CONNECT_TIMEOUT,
                   "reply_timeout": contract.REPORT_REPLY_TIMEOUT},
        "port_ranges": port_range_cases(),
        "resolve": resolve_cases(),
    }


def main() -> None:
    json.dump(vectors(), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
