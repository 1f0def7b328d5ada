"""The server identity every provisioner stamps on what it creates, and the sweep's reading of remote listings."""

from __future__ import annotations

import pytest
from traitlets.config import Config, LoggingConfigurable

from kernelfleet.provisioners.k8s.names import LABEL_VALUE
from kernelfleet.provisioners.server_identity import ServerIdentity, ServerIdentityError, server_id_of
from kernelfleet.provisioners.ssh.connections import SSHSettings
from kernelfleet.provisioners.sweep import SSHTarget
from kernelfleet.provisioners.sweep.remote_processes import parse_listing


def test_default_is_a_label_value_stable_per_runtime_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.delenv("KF_SERVER_ID", raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", "/srv/a")
    first, again = server_id_of(), server_id_of()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", "/srv/b")
    other = server_id_of()
    assert first == again != other
    assert LABEL_VALUE.fullmatch(first) and LABEL_VALUE.fullmatch(other)


def test_environment_and_config_choose_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KF_SERVER_ID", "hub-1")
    assert server_id_of() == "hub-1"
    parent = LoggingConfigurable(config=Config({"ServerIdentity": {"server_id": "hub.2"}}))
    assert server_id_of(parent) == "hub.2"


@pytest.mark.parametrize("value", ["a b", "x;touch /tmp/p", "-lead", "$(id)", "x" * 64, ""])
def test_invalid_ids_are_refused_with_their_source(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("KF_SERVER_ID", value)
    with pytest.raises(ServerIdentityError, match="KF_SERVER_ID"):
        ServerIdentity().server_id  # noqa: B018


def test_remote_listing_lines_are_checked_before_use() -> None:
    """A host's answer names pids, kernel ids and log files that later go into a kill command: anything that is
    not what the listing script prints for a launch of ours is dropped."""
    target = SSHTarget("h1", SSHSettings(user="kf"))
    output = "\n".join([
        "KF-ORPHAN 123 40 k-1 /tmp/kernelfleet-k-1-AbC123xyz789",
        "KF-ORPHAN 124 40 k-2 /etc/passwd",
        "KF-ORPHAN 125 40 k;rm -rf / /tmp/kernelfleet-k-AbC",
        "KF-ORPHAN 1x6 40 k-3 ",
        "noise from a login script",
    ])
    found = parse_listing(output, target, "srv")
    assert [(o.object_id, o.kernel_id, o.log_path) for o in found] == [
        ("123", "k-1", "/tmp/kernelfleet-k-1-AbC123xyz789"), ("124", "k-2", "")]
    assert all(o.name.startswith("h1:") and o.server_id == "srv" for o in found)
