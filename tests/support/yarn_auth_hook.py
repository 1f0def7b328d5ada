"""A stand-in ``authorization_hook`` for the YARN tests: the header a SPNEGO hook would return, fixed.

The Kerberos work supplies the real hook (a ``Negotiate`` token from GSSAPI per RM URL); these tests only show
that the provisioner sends what the hook returns on every request, to every RM."""

from __future__ import annotations

TOKEN = "Negotiate a2VybmVsZmxlZXQtdGVzdA=="
SEEN: list[str] = []


async def static_negotiate(url: str) -> str:
    SEEN.append(url)
    return TOKEN
