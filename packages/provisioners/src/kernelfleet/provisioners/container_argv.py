"""The launcher argv convention of our kernelspecs, and how container provisioners read it.

Container kernelspecs keep Gateway Provisioners' argv shape so that settings such as the kernel
class and the Spark mode live in one visible place, but the argv itself is never run on the host:
the provisioner creates the pod or container and hands these settings to the image's bootstrap as
environment variables. ``parse_container_argv`` is that translation, for our argv and for GP's
``launch_kubernetes.py`` / ``launch_docker.py`` / ``launch_custom_resource.py`` argv alike.
Running this module directly means the kernelspec was started without its provisioner, so it
fails loudly instead of pretending to start a kernel.
"""

from __future__ import annotations

import sys

from kernelfleet.protocol import contract

MODULE = "kernelfleet.provisioners.container_argv"

# The four values the server fills in for every launch (docs/protocol.md, "argv placeholders").
LAUNCHER_ARGS: tuple[str, ...] = (
    "--kernel-id",
    "{kernel_id}",
    "--port-range",
    "{port_range}",
    "--response-address",
    "{response_address}",
    "--public-key",
    "{public_key}",
)
PLACEHOLDERS: frozenset[str] = frozenset({"kernel_id", "port_range", "response_address", "public_key"})
KERNEL_CLASS_FLAG = "--kernel-class-name"
SPARK_MODE_FLAG = "--spark-context-initialization-mode"

CONTAINER_PROVISIONERS: tuple[str, ...] = (
    "kubernetes-provisioner",
    "spark-operator-provisioner",
    "docker-provisioner",
    "docker-swarm-provisioner",
)

# Launcher flag -> launcher environment variable (docs/protocol.md section 2).
# (TRANSPORT_ENCRYPTION is the server's, from its own policy, never the kernelspec argv's.)
_FLAG_TO_ENV: dict[str, str] = {
    flag: name for flag, name in contract.OPTION_VARIABLES.items() if name != contract.TRANSPORT_ENCRYPTION
}
# Enterprise Gateway spelled the same flags as traitlets options of its process proxy.
_EG_PREFIX = contract.LEGACY_OPTION_PREFIX


def launcher_args(*, kernel_class_name: str | None = None, spark_init_mode: str | None = None) -> list[str]:
    """Arguments every launcher takes, in the order GP's kernelspecs used."""
    args = list(LAUNCHER_ARGS)
    if kernel_class_name:
        args += [KERNEL_CLASS_FLAG, kernel_class_name]
    if spark_init_mode:
        args += [SPARK_MODE_FLAG, spark_init_mode]
    return args


def container_argv(*, kernel_class_name: str | None = None, spark_init_mode: str | None = None) -> list[str]:
    """Argv of a container kernelspec: GP's shape, with this module in place of ``launch_*.py``."""
    return [
        "python",
        "-m",
        MODULE,
        *launcher_args(kernel_class_name=kernel_class_name, spark_init_mode=spark_init_mode),
    ]


def parse_container_argv(argv: list[str]) -> dict[str, str]:
    """Turn a container kernelspec's argv into the launcher environment the image expects.

    Accepts ``--flag value`` and ``--flag=value``, our argv, GP's ``launch_*.py`` argv and EG's
    ``--RemoteProcessProxy.*`` spellings; the program part and unknown flags are ignored. Values
    come back as written, so format the argv first (or overwrite the placeholder entries). Flags
    that are absent are left out: the launcher's own defaults apply (Spark mode ``none``, kernel
    class ``ipykernel.ipkernel.IPythonKernel``). The last occurrence of a flag wins, as in argparse.
    """
    env: dict[str, str] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("--"):
            continue
        flag, has_value, value = token.partition("=")
        if flag.startswith(_EG_PREFIX):
            flag = "--" + flag[len(_EG_PREFIX) :]
        name = _FLAG_TO_ENV.get(flag)
        if name is None:
            continue
        if not has_value:
            if i >= len(argv) or argv[i].startswith("--"):
                raise ValueError(f"kernelspec argv: {flag} is not followed by a value")
            value = argv[i]
            i += 1
        env[name] = value
    return env


# The launcher variables a kernelspec's argv may set; the protocol's own ones (kernel id, ports, address, key)
# come from the server for each launch, never from the argv.
ARGV_SETTINGS = (contract.KERNEL_CLASS_NAME, contract.KERNEL_SPARK_CONTEXT_INIT_MODE, contract.KERNEL_CLUSTER_TYPE)


def kernelspec_settings(argv: list[str]) -> dict[str, str]:
    """The settings a container kernelspec's argv gives the image's bootstrap (kernel class, Spark mode, cluster
    type), read from the kernelspec's own argv: they are not placeholders, so they need no launch to be known."""
    parsed = parse_container_argv(argv)
    return {name: parsed[name] for name in ARGV_SETTINGS if name in parsed}


def main(argv: list[str] | None = None) -> int:
    """Refuse to run: a container kernelspec's argv only describes what its provisioner starts."""
    args = sys.argv[1:] if argv is None else argv
    try:
        kernel_id = parse_container_argv(args).get(contract.KERNEL_ID, "")
    except ValueError:
        kernel_id = ""
    subject = f"kernel {kernel_id}" if kernel_id and "{" not in kernel_id else "this kernel"
    names = ", ".join(CONTAINER_PROVISIONERS[:-1]) + " or " + CONTAINER_PROVISIONERS[-1]
    print(
        f"{MODULE}: {subject} cannot start: its kernelspec must be started by its container provisioner "
        f"({names}, as named in metadata.kernel_provisioner.provisioner_name of kernel.json), which runs "
        "the kernel in a pod or container; this argv is never run on the host",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
