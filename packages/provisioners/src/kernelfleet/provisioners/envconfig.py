"""Environment-variable defaults for traitlets, read when an object is configured, never at import.

Gateway Provisioners read ``GP_*`` variables once at import; here each trait names its variables
(ours first, GP's second) and they are read when the default is needed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})


def env_value(names: Iterable[str], env: Mapping[str, str] | None = None) -> str | None:
    source = os.environ if env is None else env
    for name in names:
        value = source.get(name)
        if value is not None:
            return value
    return None


def env_bool(names: Iterable[str], default: bool) -> bool:
    names = tuple(names)
    value = env_value(names)
    if value is None:
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{names[0]}={value!r} is not a boolean (use true or false)")


def env_number(names: Iterable[str], default: float) -> float:
    names = tuple(names)
    value = env_value(names)
    if value is None or not value.strip():
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{names[0]}={value!r} is not a number") from None


def env_list(names: Iterable[str], default: Iterable[str]) -> list[str]:
    value = env_value(names)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]
