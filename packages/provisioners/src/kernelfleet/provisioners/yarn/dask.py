"""Pure builders for Dask-on-YARN kernels: GP's ``DASK_OPTS`` (``dask-yarn submit``'s options) read as settings.

Gateway Provisioners ran ``dask-yarn submit $DASK_OPTS launch_ipykernel.py ...``: the kernel was the "client"
service of a skein application. ``dask-yarn submit`` passes the kernel's environment only as ``--client-env
KEY=VALUE`` on its command line and speaks Hadoop IPC, so it is never run here. Instead the kernel is submitted
as a plain AM through the RM's REST API (the launch token in the AM container's environment) and starts its Dask
cluster itself (``dask_yarn.YarnCluster``, in the launcher's namespace module). ``dask_opts`` turns the options
into what that needs: dask-yarn's own configuration as ``DASK_YARN__*`` environment variables (dask reads them
at import; values are Python literals, so a value is never re-parsed as something else), the AM's queue, memory
and vcores from ``--queue`` / ``--client-*``, and the ``--client-env`` entries as AM environment.

``YarnProvisioner`` calls ``dask_launch`` for a kernelspec whose env has ``DASK_OPTS``; ``jupyter yarn-spec install
--dask`` calls ``dask_opts`` to check ``--extra-dask-opts``. Nothing here does I/O.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kernelfleet.provisioners.kernel_env import FORBIDDEN_CHARACTERS
from kernelfleet.provisioners.yarn.submission import expand, expand_options

#: The marker the launcher's namespace module reads: ``client`` is a Client of a YarnCluster started from the kernel.
DASK_YARN_MARKER = "KF_DASK_YARN"
#: ``--temporary-security-credentials``: skein gets fresh TLS credentials for this cluster.
TEMPORARY_CREDENTIALS = "KF_DASK_YARN_TEMPORARY_CREDENTIALS"
DASK_OPTS = "DASK_OPTS"
GP_DASK_EXE = "DASK_YARN_EXE"
#: dask-yarn submit's options that take a value -> dask-yarn's configuration key (``yarn.<key>``) and value kind.
CONFIG_OPTIONS: dict[str, tuple[str, str]] = {
    "--name": ("name", "str"),
    "--queue": ("queue", "str"),
    "--user": ("user", "str"),
    "--tags": ("tags", "tags"),
    "--environment": ("environment", "str"),
    "--deploy-mode": ("deploy-mode", "deploy"),
    "--worker-count": ("worker.count", "int"),
    "--worker-vcores": ("worker.vcores", "int"),
    "--worker-memory": ("worker.memory", "memory"),
    "--worker-restarts": ("worker.restarts", "int"),
    "--worker-env": ("worker.env", "env"),
    "--scheduler-vcores": ("scheduler.vcores", "int"),
    "--scheduler-memory": ("scheduler.memory", "memory"),
}
CLIENT_OPTIONS = ("--client-vcores", "--client-memory", "--client-env")
FLAGS = ("--temporary-security-credentials",)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MEMORY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGTP]?i?B?)?\s*", re.I)
MIB_PER_UNIT = {"": 1, "B": 1 / 1024**2, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}


@dataclass(frozen=True)
class DaskOptions:
    """What ``DASK_OPTS`` says: dask-yarn configuration, and the kernel's own (client) container."""

    config: dict[str, object] = field(default_factory=dict)  #: dask-yarn keys ("worker.count") -> values
    client_env: dict[str, str] = field(default_factory=dict)
    client_memory_mb: int | None = None
    client_vcores: int | None = None
    temporary_credentials: bool = False

    @property
    def queue(self) -> str | None:
        value = self.config.get("queue")
        return str(value) if value else None


@dataclass(frozen=True)
class DaskLaunch:
    """A Dask kernel's REST submission: the AM command, its extra environment and container."""

    argv: list[str]
    env: dict[str, str]
    queue: str | None
    memory_mb: int | None
    vcores: int | None


def memory_mb(option: str, text: str) -> int:
    """dask-yarn's memory ('2 GiB', '4096 MiB', '2GB', a bare number of MiB), rounded up to MiB."""
    match = MEMORY.fullmatch(text)
    if not match:
        raise ValueError(f"DASK_OPTS {option} {text!r} is not an amount of memory such as '2 GiB' or '4096 MiB'")
    unit = (match[2] or "").upper()[:1]
    return max(1, math.ceil(float(match[1]) * MIB_PER_UNIT[unit]))


def _value(option: str, text: str) -> str:
    if any(ch in text for ch in FORBIDDEN_CHARACTERS):
        raise ValueError(f"DASK_OPTS {option}: the value contains a newline or NUL character")
    return text


def _integer(option: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"DASK_OPTS {option} {text!r} is not a whole number") from None


def _env_entry(option: str, text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not ENV_NAME.fullmatch(name):
        raise ValueError(f"DASK_OPTS {option} {text.split('=', 1)[0]!r}: expected NAME=VALUE with a variable name")
    return name, value.strip()


def dask_opts(words: Sequence[str]) -> DaskOptions:
    """``dask-yarn submit``'s options, as words (already split and expanded), read as settings.

    Every option that ``dask-yarn submit`` takes is understood; anything else (another option, a positional word:
    the script is the kernelspec's, not DASK_OPTS') is refused by name, so a mistake is not silently dropped.
    """
    config: dict[str, object] = {}
    client_env: dict[str, str] = {}
    worker_env: dict[str, str] = {}
    client_memory: int | None = None
    client_vcores: int | None = None
    temporary = False
    i = 0
    while i < len(words):
        word = words[i]
        option, eq, inline = word.partition("=")
        if option in FLAGS and not eq:
            temporary = True
            i += 1
            continue
        if option not in CONFIG_OPTIONS and option not in CLIENT_OPTIONS:
            shown = option if option.startswith("-") else "a positional word"
            raise ValueError(f"DASK_OPTS: {shown} is not an option of dask-yarn submit that a kernel can use")
        if eq:
            text, i = inline, i + 1
        elif i + 1 < len(words):
            text, i = words[i + 1], i + 2
        else:
            raise ValueError(f"DASK_OPTS {option} needs a value")
        text = _value(option, text)
        if option == "--client-env":
            name, value = _env_entry(option, text)
            client_env[name] = value
        elif option == "--client-memory":
            client_memory = memory_mb(option, text)
        elif option == "--client-vcores":
            client_vcores = _integer(option, text)
        else:
            key, kind = CONFIG_OPTIONS[option]
            if kind == "int":
                config[key] = _integer(option, text)
            elif kind == "memory":
                memory_mb(option, text)  # checked here; dask-yarn parses it again
                config[key] = text
            elif kind == "tags":
                config[key] = sorted({t.strip() for t in text.split(",") if t.strip()})
            elif kind == "env":
                name, value = _env_entry(option, text)
                worker_env[name] = value
                config[key] = dict(worker_env)
            elif kind == "deploy":
                if text not in ("remote", "local"):
                    raise ValueError(f"DASK_OPTS --deploy-mode {text!r} is not remote or local")
                config[key] = text
            else:
                config[key] = text
    return DaskOptions(config=config, client_env=client_env, client_memory_mb=client_memory,
                       client_vcores=client_vcores, temporary_credentials=temporary)


def dask_env(options: DaskOptions, *, tags: Sequence[str] = (), user: str | None = None) -> dict[str, str]:
    """The kernel's environment for a Dask cluster on YARN: the marker, ``--client-env`` entries, and dask-yarn's
    configuration as ``DASK_YARN__<KEY>`` (``worker.count`` -> ``DASK_YARN__WORKER__COUNT``), each value a Python
    literal (dask parses them with ``ast.literal_eval``). ``tags`` (our kernel and server tags, so the orphan sweep
    finds the Dask application too) join ``--tags``; ``user`` (impersonation) is dask-yarn's ``user``."""
    config = dict(options.config)
    if tags:
        config["tags"] = sorted({*(str(t) for t in config.get("tags", ()) or ()), *tags})  # type: ignore[union-attr]
    if user:
        config["user"] = user
    env = dict(options.client_env)
    for key, value in config.items():
        name = "DASK_YARN__" + key.upper().replace(".", "__").replace("-", "_")
        env[name] = repr(value)
    env[DASK_YARN_MARKER] = "1"
    if options.temporary_credentials:
        env[TEMPORARY_CREDENTIALS] = "1"
    return env


def is_dask_kernelspec(spec_env: Mapping[str, str]) -> bool:
    """A kernelspec for a Dask kernel on YARN: GP's ``yarn_dask_python`` and ``yarn-spec install --dask`` set
    ``DASK_OPTS`` in its env (the kernelspec's env, never the request's)."""
    return DASK_OPTS in spec_env


def dask_python(env: Mapping[str, str]) -> str:
    """The interpreter of a GP-written Dask kernelspec: ``--environment python://<python>`` (``venv://`` and
    ``conda://`` name an environment directory), else the ``python`` beside ``DASK_YARN_EXE``."""
    for scheme in ("python://", "venv://", "conda://"):
        for word in expand_options(env.get(DASK_OPTS, ""), env):
            if word.startswith(scheme):
                path = word[len(scheme):]
                return path if scheme == "python://" else os.path.join(path, "bin", "python")
    exe = expand(env.get(GP_DASK_EXE, ""), env)
    if not exe:
        raise ValueError("DASK_OPTS names no --environment python://... and DASK_YARN_EXE is not set: the kernel's "
                         "interpreter is unknown")
    return os.path.join(os.path.dirname(exe), "python")


def gp_dask_argv(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """What GP's Dask ``run.sh`` started in the client container, as an AM command: ``<python>
    <kernel dir>/scripts/launch_ipykernel.py $LAUNCH_OPTS <argv[1:]>`` (``dask-yarn submit`` itself is not run)."""
    kernel_dir = os.path.dirname(os.path.dirname(argv[0]))
    script = os.path.join(kernel_dir, "scripts", "launch_ipykernel.py")
    return [dask_python(env), script, *expand_options(env.get("LAUNCH_OPTS", ""), env), *argv[1:]]


def dask_launch(argv: Sequence[str], env: Mapping[str, str], *, gp_run_sh: bool, tags: Sequence[str],
                user: str | None) -> DaskLaunch:
    """A Dask kernel's submission from its kernelspec argv and launch environment (with the kernelspec's templates:
    ``submission.with_templates``): ``DASK_OPTS`` split into words first and each word then expanded, so a request
    value never becomes a second option; then read by ``dask_opts``."""
    options = dask_opts(expand_options(env.get(DASK_OPTS, ""), env))
    command = gp_dask_argv(argv, env) if gp_run_sh else list(argv)
    return DaskLaunch(argv=command, env=dask_env(options, tags=tags, user=user), queue=options.queue,
                      memory_mb=options.client_memory_mb, vcores=options.client_vcores)
