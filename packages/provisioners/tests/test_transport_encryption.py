"""What the provisioner makes of a verified report's CurveZMQ fields, per transport_encryption policy."""

from __future__ import annotations

import logging

import pytest
import zmq

from kernelfleet.provisioners.transport_encryption import (
    CurvePlan,
    TransportEncryptionError,
    normalise_policy,
    spec_declares_curve,
)

LOG = logging.getLogger("test.transport_encryption")


def key_pair() -> dict[str, str]:
    public, secret = zmq.curve_keypair()
    return {"curve_publickey": public.decode(), "curve_secretkey": secret.decode()}


def plan(policy: str, *, language: str = "python", declared: bool = True) -> CurvePlan:
    metadata = {"supported_encryption": ["curve"]} if declared else {}
    return CurvePlan.for_launch("k-1", policy, metadata=metadata, language=language, log=LOG)


@pytest.mark.parametrize(
    ("metadata", "declared"),
    [({}, False), ({"supported_encryption": ["curve"]}, True), ({"supported_encryption": "CURVE "}, True),
     ({"supported_encryption": ["tls"]}, False), ({"supported_encryption": None}, False)],
)
def test_spec_declaration_is_read_as_jupyter_client_reads_it(metadata: dict[str, object], declared: bool) -> None:
    assert spec_declares_curve(metadata) is declared


def test_launcher_is_asked_only_when_policy_and_spec_agree() -> None:
    assert plan("disabled").launcher_value == ""
    assert plan("auto", declared=False).launcher_value == ""
    assert plan("auto").launcher_value == "auto"
    assert plan("required").launcher_value == "required"
    with pytest.raises(ValueError, match="k-1: transport_encryption must be one of"):
        normalise_policy("k-1", "sometimes")


@pytest.mark.parametrize(("language", "kernel"), [("R", "IRkernel"), ("scala", "Apache Toree")])
def test_kernels_without_curve(language: str, kernel: str, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(TransportEncryptionError, match=f"Kernel k-1: transport_encryption='required', but {kernel}"):
        plan("required", language=language)
    with caplog.at_level(logging.WARNING):
        assert plan("auto", language=language).requested is False
    assert [r.levelname for r in caplog.records] == ["WARNING"] and kernel in caplog.text


def test_valid_keys_are_used() -> None:
    keys = key_pair()
    assert plan("required").accept(dict(keys, launcher="python/0.1.0"), "python/0.1.0", LOG) == keys


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({}, "reported no CurveZMQ keys"),
        ({"curve_publickey": key_pair()["curve_publickey"]}, "incomplete CurveZMQ key pair"),
        ({"curve_publickey": "short", "curve_secretkey": "short"}, "not 40-character Z85"),
        ({"curve_publickey": key_pair()["curve_publickey"], "curve_secretkey": key_pair()["curve_secretkey"]},
         "public key that does not belong to its secret key"),
    ],
)
def test_unusable_keys_fail_required_and_fall_back_under_auto(
    extra: dict[str, str], problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(TransportEncryptionError, match=f"Kernel k-1: .*required.*python/0.1.0.*{problem}") as err:
        plan("required").accept(extra, "python/0.1.0", LOG)
    for value in extra.values():
        assert value not in str(err.value)  # a key is never quoted
    with caplog.at_level(logging.WARNING):
        assert plan("auto").accept(extra, "python/0.1.0", LOG) == {}
    assert len(caplog.records) == 1 and problem in caplog.text
    for value in extra.values():
        assert value not in caplog.text
