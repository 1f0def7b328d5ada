"""RESPONSE_ADDRESS parsing: ``host:port`` or ``[v6-address]:port``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResponseAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ResponseAddress:
        text = (text or "").strip()
        if text.startswith("["):
            host, sep, port_s = text[1:].partition("]:")
        else:
            host, sep, port_s = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"RESPONSE_ADDRESS {text!r} must be 'host:port'")
        try:
            port = int(port_s)
        except ValueError as err:
            raise ValueError(f"RESPONSE_ADDRESS {text!r} has no numeric port") from err
        if not 0 < port < 65536:
            raise ValueError(f"RESPONSE_ADDRESS {text!r}: port out of range")
        return cls(host, port)

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
