"""Coverage-guided (atheris/libFuzzer) targets: fuzzer bytes in, the checks of ``fuzz_properties`` out.

Run one target:  ``PYTHONPATH=tests/support python -m fuzz_atheris TARGET [libFuzzer flags] [corpus dirs]``.
tests/fuzz/test_fuzz_atheris.py runs every target for a bounded number of runs in CI; tools/fuzz runs long
campaigns and keeps their corpora. A target that finds a broken property exits non-zero with the input saved
by libFuzzer (``crash-*``), which then becomes a regression test.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import atheris

if __name__ == "__main__":  # fuzzing: instrument the code under test (never when a test only lists TARGETS)
    with atheris.instrument_imports(include=["kernelfleet"]):
        # Everything the checkers reach, imported here so that its code is instrumented for coverage.
        pass

import fuzz_properties as props

REQUEST_NAMES = (
    "KERNEL_UID", "KERNEL_GID", "KERNEL_IMAGE", "KERNEL_WORKING_DIR", "KERNEL_NAMESPACE",
    "KERNEL_SERVICE_ACCOUNT_NAME", "KERNEL_POD_NAME", "KERNEL_USERNAME", "KERNEL_CPUS", "KERNEL_MEMORY",
    "KERNEL_GPUS_LIMIT", "KERNEL_VOLUMES", "KERNEL_VOLUME_MOUNTS", "KERNEL_EXTRA", "KERNEL_LAUNCH_TIMEOUT",
)


def _json_value(fdp: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    """A JSON value chosen by the fuzzer, nested up to 24 levels (the protocol refuses more than 16)."""
    kind = fdp.ConsumeIntInRange(0, 7 if depth < 24 else 4)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(4)
    if kind == 3:
        return fdp.ConsumeRegularFloat()
    if kind == 4:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 24))  # lone surrogates too: JSON carries them
    if kind == 5:
        return [_json_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))]
    return {fdp.ConsumeUnicodeNoSurrogates(8): _json_value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 3))}


def _connection_info(fdp: atheris.FuzzedDataProvider) -> dict[str, Any]:
    """The valid connection info with some fields replaced, dropped or added by the fuzzer."""
    info = props.valid_connection_info()
    fields = [*info, "kernel_id", "launcher", "extra"]
    for _ in range(fdp.ConsumeIntInRange(0, 4)):
        name = fields[fdp.ConsumeIntInRange(0, len(fields) - 1)]
        if fdp.ConsumeBool():
            info.pop(name, None)
        else:
            info[name] = _json_value(fdp)
    return info


def report_line(data: bytes) -> None:
    props.check_report_line(data, accept_v1=False)
    props.check_report_line(data, accept_v1=True)


def report_mutation(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    props.check_report_mutation(fdp.ConsumeIntInRange(0, 1 << 16), fdp.ConsumeIntInRange(0, 255))


def report_sealed_info(data: bytes) -> None:
    props.check_sealed_info(_connection_info(atheris.FuzzedDataProvider(data)))


def report_v1_info(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    info = _connection_info(fdp)
    info.setdefault("kernel_id", props.KERNEL_ID)
    props.check_legacy_info(info)


def comm_line(data: bytes) -> None:
    props.check_comm_line(data)


def comm_signed(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    body = _json_value(fdp) if fdp.ConsumeBool() else {"op": fdp.ConsumeUnicodeNoSurrogates(10), "grace":
                                                       _json_value(fdp)}
    props.check_signed_request(body)


def _request(fdp: atheris.FuzzedDataProvider) -> dict[str, str]:
    return {REQUEST_NAMES[fdp.ConsumeIntInRange(0, len(REQUEST_NAMES) - 1)]: fdp.ConsumeUnicode(40)
            for _ in range(fdp.ConsumeIntInRange(0, 5))}


def kernel_env(data: bytes) -> None:
    props.check_kernel_env(_request(atheris.FuzzedDataProvider(data)))


def docker_request(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    props.check_docker_request(_request(fdp), permissive=fdp.ConsumeBool())


def k8s_request(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    props.check_k8s_request(_request(fdp), permissive=fdp.ConsumeBool())


_TEMPLATE = props.write_pod_template(Path(tempfile.mkdtemp(prefix="kf-fuzz-template-")))


def pod_template(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    values: dict[str, Any] = {name: fdp.ConsumeUnicodeNoSurrogates(30) for name in (
        "kernel_pod_name", "kernel_namespace", "kernel_id", "kernel_username", "kernel_extra", "kernel_image")}
    values.update(kernel_uid=fdp.ConsumeIntInRange(0, 2**32 - 1), kernel_gid=fdp.ConsumeIntInRange(0, 2**32 - 1))
    props.check_pod_template(_TEMPLATE, values)


def cli_inputs(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    name = fdp.ConsumeUnicode(20)
    props.check_kernel_name(name)
    props.check_port_range(fdp.ConsumeUnicode(24), min_size=fdp.ConsumeIntInRange(0, 2000))


def launch_timeout(data: bytes) -> None:
    props.check_launch_timeout(atheris.FuzzedDataProvider(data).ConsumeUnicode(32))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "report_line": report_line,
    "report_mutation": report_mutation,
    "report_sealed_info": report_sealed_info,
    "report_v1_info": report_v1_info,
    "comm_line": comm_line,
    "comm_signed": comm_signed,
    "kernel_env": kernel_env,
    "docker_request": docker_request,
    "k8s_request": k8s_request,
    "pod_template": pod_template,
    "cli_inputs": cli_inputs,
    "launch_timeout": launch_timeout,
}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: python -m fuzz_atheris {{{','.join(TARGETS)}}} [libFuzzer flags] [corpus dirs]")
    target = TARGETS[argv[1]]
    props.server_key()  # made before fuzzing starts, so key generation is not counted against each input
    # libFuzzer re-runs argv[0] through the shell for -merge and -fork: make it this very command.
    rerun = f"{sys.executable} -m fuzz_atheris {argv[1]}"
    atheris.Setup([rerun, *argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
