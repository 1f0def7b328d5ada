"""Render, check and install one kernel.json, so that a half-rendered file can never be installed.

Gateway Provisioners copied a template and filled it in place; when filling failed, the
template stayed behind with exit status 0. Here the whole file is made in memory, checked, and
only then copied into place by jupyter_client.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_core.paths import SYSTEM_JUPYTER_PATH

from kernelfleet.provisioners.container_argv import PLACEHOLDERS

#: jupyter_client's kernelspec name rule (letters, digits, '.', '_', '-'), after lower-casing.
_KERNEL_NAME = re.compile(r"[a-z0-9._-]+")
_TEMPLATE_VARIABLE = re.compile(r"\$\{[^}]*\}")
_ARGV_FIELD = re.compile(r"\{([^{}]*)\}")


class SpecError(Exception):
    """A mistake in the request: reported as one line, exit status 1, nothing written."""


def normalise_kernel_name(name: str) -> str:
    """GP turned spaces into ``_``; jupyter_client lowercases; both happen before any check.

    Called by every ``*-spec install`` before anything is written or removed. The name becomes one
    directory under the kernels directory, which ``--replace`` removes first: ``.`` would be the kernels
    directory itself (every other kernelspec) and ``..`` the whole ``share/jupyter``, so both are refused
    along with everything jupyter_client's own name rule refuses.
    """
    normalised = name.strip().replace(" ", "_").lower()
    if not _KERNEL_NAME.fullmatch(normalised):
        raise SpecError(
            f"kernel name {name!r} is not valid: use only letters, digits, '.', '_' and '-' (spaces become '_')"
        )
    if normalised in (".", ".."):
        raise SpecError(f"kernel name {name!r} is not valid: it names a directory outside the kernelspec's own")
    return normalised


def render_kernel_json(spec: dict[str, Any]) -> str:
    """Serialise ``spec`` (2-space indent, trailing newline) and prove the text is complete."""
    text = json.dumps(spec, indent=2, ensure_ascii=False) + "\n"
    if json.loads(text) != spec:
        raise SpecError("internal error: kernel.json does not survive a JSON round trip")
    # ``${VAR}`` is a jupyter_client feature inside ``env`` only; anywhere else it is a leftover.
    rest = {key: value for key, value in spec.items() if key != "env"}
    leftover = _TEMPLATE_VARIABLE.search(json.dumps(rest, ensure_ascii=False))
    if leftover:
        raise SpecError(f"kernel.json would contain the unreplaced template variable {leftover.group(0)!r}")
    for arg in spec["argv"]:
        for field in _ARGV_FIELD.findall(arg):
            if field not in PLACEHOLDERS:
                raise SpecError(f"kernel.json argv entry {arg!r} holds {{{field}}}, which nothing would fill in")
    KernelSpec(**spec)  # jupyter_client's own trait checks, before anything touches the disk
    return text


def destination(manager: KernelSpecManager, name: str, *, user: bool, prefix: str | None) -> Path:
    """Where ``install_kernel_spec`` will put ``name`` (it silently replaces what is there)."""
    if user:
        return Path(manager.user_kernel_dir) / name
    if prefix:
        return Path(os.path.abspath(prefix)) / "share" / "jupyter" / "kernels" / name
    return Path(SYSTEM_JUPYTER_PATH[0]) / "kernels" / name


def install_kernel_json(
    manager: KernelSpecManager, text: str, name: str, *, user: bool, prefix: str | None, replace: bool,
    resources: Mapping[str, Path] | None = None,
) -> Path:
    """Install a rendered kernel.json, with ``resources`` (file name -> file to copy: logos, kernel.js) beside
    it, as kernelspec ``name``; refuse to overwrite unless ``replace``."""
    target = destination(manager, name, user=user, prefix=prefix)
    if target.exists() and not replace:
        raise SpecError(f"kernelspec {name!r} already exists at {target}; use --replace to overwrite it")
    with tempfile.TemporaryDirectory(prefix="kernelfleet-spec-") as staging:
        # copytree copies the staging dir's 0700 mode; a system-wide kernelspec must be readable.
        os.chmod(staging, 0o755)
        Path(staging, "kernel.json").write_text(text, encoding="utf-8")
        for file_name, source in (resources or {}).items():
            shutil.copyfile(source, Path(staging, file_name))
        try:
            installed = manager.install_kernel_spec(staging, name, user=user, prefix=prefix)
        except OSError as err:
            raise SpecError(
                f"cannot install kernelspec {name!r} into {target.parent}: {err.strerror or err}; "
                "choose another place with --user, --prefix or --sys-prefix"
            ) from err
    if Path(installed) != target:
        raise SpecError(f"internal error: jupyter_client installed {name!r} into {installed}, expected {target}")
    return target
