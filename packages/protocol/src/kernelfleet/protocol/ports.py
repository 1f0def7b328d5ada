"""PORT_RANGE parsing shared by the server (validation) and the launchers (port choice)."""

from __future__ import annotations

from dataclasses import dataclass

MIN_PORT = 1024
MAX_PORT = 65535


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
        if text is None or text.strip() in ("", "0..0"):
            return cls()
        lower_s, sep, upper_s = text.strip().partition("..")
        if not sep:
            raise PortRangeError(f"port range {text!r} must look like 'lower..upper', e.g. '40000..41000'")
        try:
            lower, upper = int(lower_s), int(upper_s)
        except ValueError as err:
            raise PortRangeError(f"port range {text!r}: both ends must be whole numbers") from err
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
