"""Pure parts of the Kerberos support: reading Negotiate challenges and libkrb5's reason out of GSSAPI's text."""

from __future__ import annotations

import base64

from kernelfleet.provisioners.kerberos import KINIT_HINT, gss_reason
from kernelfleet.provisioners.spnego import negotiate_token


def test_negotiate_challenges() -> None:
    token = base64.b64encode(b"\x60\x01mutual").decode()
    assert negotiate_token(["Negotiate"]) == b""
    assert negotiate_token([f"negotiate {token}"]) == b"\x60\x01mutual"
    assert negotiate_token(["Basic realm=x", f"Negotiate {token}"]) == b"\x60\x01mutual"
    assert negotiate_token(["Basic realm=x"]) is None
    assert negotiate_token(["Negotiate not*base64"]) is None
    assert negotiate_token([]) is None


def test_gss_reason_takes_libkrb5s_words() -> None:
    text = ("SpnegoError (4294967295): Major (851968): Unspecified GSS failure.  Minor code may provide more "
            "information, Minor (2529639068): Cannot contact any KDC for realm 'R.TEST', Context: Processing token")
    assert gss_reason(text) == "Cannot contact any KDC for realm 'R.TEST'"
    missing = "Major (458752): No credentials were supplied, Minor (2529639053): No Kerberos credentials available"
    assert gss_reason(missing) == f"No Kerberos credentials available; {KINIT_HINT}"
    assert gss_reason("plain failure") == "plain failure"
