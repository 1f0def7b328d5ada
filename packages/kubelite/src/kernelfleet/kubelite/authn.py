"""Who is asking: bearer tokens and verified client certificates mapped to users and groups, as the API server's
token and x509 authenticators do.

``KubeLite`` owns one ``Authenticator``; its request entry (server.py ``_dispatch``) calls ``authenticate`` and
answers 401 for a request nobody can be made of (anonymous access is off, as on a hardened cluster).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from aiohttp import web

from .tls import peer_identity

AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated user: its name and groups (always including ``system:authenticated``)."""

    name: str
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if AUTHENTICATED not in self.groups:
            object.__setattr__(self, "groups", (*self.groups, AUTHENTICATED))


def service_account_user(namespace: str, name: str) -> UserInfo:
    """The identity a service account's token authenticates as."""
    return UserInfo(f"system:serviceaccount:{namespace}:{name}",
                    ("system:serviceaccounts", f"system:serviceaccounts:{namespace}"))


class Authenticator:
    """Static bearer tokens (the API server's ``--token-auth-file``) and client certificates signed by the CA."""

    def __init__(self) -> None:
        self._tokens: dict[str, UserInfo] = {}

    def add_token(self, user: UserInfo, token: str | None = None) -> str:
        """Register ``token`` (random when None) for ``user``; returns it."""
        token = token or secrets.token_urlsafe(24)
        self._tokens[token] = user
        return token

    def authenticate(self, request: web.Request) -> UserInfo | None:
        """The request's user: its bearer token's, else its verified client certificate's; None is a 401."""
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, token = header.partition(" ")
            return self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        transport = request.transport
        identity = peer_identity(transport.get_extra_info("peercert")) if transport is not None else None
        return UserInfo(identity[0], identity[1]) if identity is not None else None
