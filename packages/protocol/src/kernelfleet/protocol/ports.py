"""PORT_RANGE parsing shared by the server (validation) and the launchers (port choice)."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Blanks around the whole value are ignored (a value read from a config file); nothing else is.
from kernelfleet.protocol.contract import BLANKS

MIN_PORT = 1024
MAX_PORT = 65535
#: docs/protocol.md section 5: ``lower..upper``, each end 1-5 ASCII digits (no sign, no '_', no other script's
#: digits, no blanks around '..'). The R and Scala launchers use the same rule; docs/launcher-vectors.json
#: ("port_ranges") holds the cases all three are checked against.
_PORT_RANGE = re.compile(r"([0-9]{1,5})\.\.([0-9]{1,5})")


class PortRangeError(ValueError):
    """PORT_RANGE is malformed or too small."""


@dataclass(frozen=True)
class PortRange:
    """``lower..upper`` inclusive; ``0..0`` means "any free port"."""

    lower: int = 0
    upper: int = 0

    @property
    def unrestricted(self) -> bool:
        return self.lower == 0 and self.upper == 0

    @property
    def size(self) -> int:
        return 0 if self.unrestricted else self.upper - self.lower + 1

    @classmethod
    def parse(cls, text: str | None, *, min_size: int = 0) -> PortRange:
        """Parse ``PORT_RANGE`` / ``port_range``: the server (kernelspec config, ``*-spec install``) and the
        Python launcher call it; ``min_size`` is the server's minimum, launchers pass none."""
        body = "" if text is None else text.strip(BLANKS)
        if body in ("", "0..0"):
            return cls()
        match = _PORT_RANGE.fullmatch(body)
        if match is None:
            raise PortRangeError(
                f"port range {text!r} must look like 'lower..upper' with both ends whole numbers written in"
                f" digits 0-9, e.g. '40000..41000'"
            )
        lower, upper = int(match[1]), int(match[2])
        if not (MIN_PORT <= lower <= upper <= MAX_PORT):
            raise PortRangeError(
                f"port range {text!r}: need {MIN_PORT} <= lower <= upper <= {MAX_PORT}"
            )
        rng = cls(lower, upper)
        if rng.size < min_size:
            raise PortRangeError(f"port range {text!r} holds {rng.size} ports; at least {min_size} are required")
        return rng

    def __str__(self) -> str:
        return f"{self.lower}..{self.upper}"
