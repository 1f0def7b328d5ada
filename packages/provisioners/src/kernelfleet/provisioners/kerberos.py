"""What Kerberos says, in words an operator can act on: shared by SPNEGO (``spnego``) and GSSAPI SSH logins
(``ssh.connections``), so both report a missing, expired or unusable ticket the same way.

GSSAPI's status text (``Major (851968): Unspecified GSS failure. Minor code may provide more information, Minor
(…): Cannot contact any KDC for realm 'X'``) hides libkrb5's reason in the minor status; ``gss_reason`` takes it
out and, when there is no ticket, adds what to do. Every function here may read the credential cache: call them on
a worker thread.
"""

from __future__ import annotations

import re

MINOR = re.compile(r"Minor \(\d+\): (.*?)(?:, Context:|$)")
KINIT_HINT = "get a ticket with kinit (or point KRB5CCNAME at a credential cache that has one)"


def gss_reason(text: str) -> str:
    """libkrb5's own reason out of a GSSAPI status text, with what to do when there is no ticket."""
    found = MINOR.search(text)
    reason = found.group(1).strip() if found and found.group(1).strip() else text.strip()
    if "No Kerberos credentials" in reason or "No credentials" in reason:
        reason += f"; {KINIT_HINT}"
    return reason


def ticket_note(user: str) -> str:
    """Whose ticket a GSSAPI login as ``user`` presents, or why there is none (blocking: reads the cache).

    Raises ImportError when python-gssapi is not installed (the ``kerberos`` extra)."""
    import gssapi

    try:
        credentials = gssapi.Credentials(usage="initiate")
        if credentials.lifetime == 0:
            return f"the Kerberos ticket of {credentials.name} has expired; renew it with kinit"
    except gssapi.exceptions.GSSError as err:
        return gss_reason(err.gen_message())
    return (f"the ticket is {credentials.name}'s, which the host must map to {user} (its auth_to_local rules or "
            f"~{user}/.k5login)")
