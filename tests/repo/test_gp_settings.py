"""The Gateway Provisioners migration table (kernelfleet.provisioners.gp_settings, issue 14 items 5-6) says what the
code does: every honoured GP_* name, set alone, sets the setting the table names; every name the code reads is in
the table; the defaults listed as changed are the code's defaults; leftover names are warned about once, without
their values; and docs/migrating-from-gateway-provisioners.md is what the table renders today."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from jupyter_client.localinterfaces import public_ips

from kernelfleet.provisioners import gp_settings
from kernelfleet.provisioners.broker import ResponseBroker, allowed_addresses
from kernelfleet.provisioners.gp_settings import CHANGED_DEFAULTS, GP_ENVIRONMENT, GP_FEATURES, Support

ROOT = Path(__file__).resolve().parents[2]
PROBED = [row for row in GP_ENVIRONMENT if row.probe is not None]


def load(target: str) -> type:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No KF_* or GP_* variable of the runner's environment leaks into a default."""
    for name in list(os.environ):
        if name.startswith(("KF_", "GP_")):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize("row", PROBED, ids=[row.name for row in PROBED])
def test_an_honoured_name_sets_the_setting_the_table_names(row: gp_settings.GpEnvironmentName,
                                                            bare_environment: pytest.MonkeyPatch) -> None:
    assert row.probe is not None
    bare_environment.setenv(row.name, row.probe.sample)
    owner = load(row.probe.owner)()
    assert getattr(owner, row.probe.setting) == row.probe.expected, row
    assert row.probe.setting in row.ours, f"{row.name}: the table names {row.ours!r}, the probe reads another"


def test_every_row_is_proven_or_says_it_has_no_effect() -> None:
    for row in GP_ENVIRONMENT:
        assert row.name.startswith("GP_"), row.name
        if row.support is Support.NO_EFFECT:
            assert row.probe is None and not row.verified_by, f"{row.name}: no effect, yet a probe"
        else:
            assert row.probe is not None or row.verified_by, f"{row.name}: honoured, but nothing shows it"
        if row.verified_by:
            assert (ROOT / row.verified_by.partition("::")[0]).is_file(), row.verified_by
    names = [row.name for row in GP_ENVIRONMENT]
    assert len(names) == len(set(names)), "a name is listed twice"


@pytest.mark.parametrize("feature", GP_FEATURES, ids=[f.name[:40] for f in GP_FEATURES])
def test_every_other_gp_name_names_the_test_that_shows_it(feature: gp_settings.GpFeature) -> None:
    """Honoured or refused, each of GP's other names points at a test that exists and shows the behaviour."""
    path, _, name = feature.verified_by.partition("::")
    assert (ROOT / path).is_file(), feature.verified_by
    if name:
        assert re.search(rf"^(async )?def {re.escape(name)}\(", (ROOT / path).read_text(), re.M), feature.verified_by


def test_every_gp_name_the_code_reads_is_in_the_table() -> None:
    """A GP_* name read anywhere in the packages (as a string literal) is documented, and the table does not
    call a name it reads 'no effect'."""
    read = set()
    for path in (ROOT / "packages").rglob("*.py"):
        if "/tests/" in str(path) or path.name == "gp_settings.py":
            continue
        read |= set(re.findall(r"[\"'](GP_[A-Z_]+)[\"']", path.read_text()))
    rows = {row.name: row for row in GP_ENVIRONMENT}
    assert not read - rows.keys(), f"read by the code but not in gp_settings: {sorted(read - rows.keys())}"
    wrongly_no_effect = sorted(name for name in read if rows[name].support is Support.NO_EFFECT)
    assert not wrongly_no_effect, f"read by the code yet listed as no effect: {wrongly_no_effect}"


@pytest.mark.parametrize("change", [c for c in CHANGED_DEFAULTS if c.setting], ids=lambda c: c.topic[:40])
def test_a_changed_default_is_the_codes_default(change: gp_settings.ChangedDefault,
                                                bare_environment: pytest.MonkeyPatch) -> None:
    owner, _, setting = change.setting.rpartition(".")
    assert getattr(load(owner)(), setting) == change.default
    assert setting in change.restore, f"{change.topic}: the restore line does not name {setting}"


def test_leftover_names_are_warned_once_without_their_values(caplog: pytest.LogCaptureFixture,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gp_settings, "_warned", set())
    env = {"GP_POD_TEMPLATE_DIR": "/hunter2-secret", "GP_POLL_INTERVAL": "0.5", "GP_PORT_RANGE": "40000..41000"}
    log = logging.getLogger("test.gp_settings")
    with caplog.at_level(logging.WARNING, logger="test.gp_settings"):
        gp_settings.warn_about_gp_environment(log, env)
        gp_settings.warn_about_gp_environment(log, env)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages  # each no-effect name once; the honoured one not at all
    assert any(m.startswith("GP_POD_TEMPLATE_DIR is set but has no effect") for m in messages)
    assert any("GP_POLL_INTERVAL" in m and "engine events" in m for m in messages)
    assert not any("hunter2" in m or "0.5" in m.split(":")[0] for m in messages)


def test_a_provisioner_made_with_a_leftover_name_warns(caplog: pytest.LogCaptureFixture,
                                                       bare_environment: pytest.MonkeyPatch) -> None:
    bare_environment.setattr(gp_settings, "_warned", set())
    bare_environment.setenv("GP_APP_NAME", "my-gateway")
    from kernelfleet.provisioners.docker.provisioner import DockerProvisioner

    with caplog.at_level(logging.WARNING):
        DockerProvisioner()
    assert any("GP_APP_NAME is set but has no effect" in r.getMessage() and "app=kernelfleet" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_the_migration_guide_is_current() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "migration_docs.py"), "--check"],
                         capture_output=True, text=True, check=False, timeout=60)
    assert run.returncode == 0, f"{run.stderr}\n{run.stdout[-4000:]}"


def test_prohibited_addresses_are_matched_as_gateway_provisioners_did() -> None:
    ips = ["192.0.2.2", "172.18.0.1", "172.17.0.1"]
    assert allowed_addresses(ips, []) == ips
    assert allowed_addresses(ips, [r"172\.1[78]\."]) == ["192.0.2.2"]
    assert allowed_addresses(ips, [r"192\.0\.2\.2"]) == ["172.18.0.1", "172.17.0.1"]
    assert allowed_addresses(ips, [".*"]) == []


def test_a_bad_prohibited_pattern_is_refused_naming_the_setting() -> None:
    from traitlets import TraitError

    with pytest.raises(TraitError, match=r"prohibited_local_ips: '172-\(' is not a regular expression"):
        ResponseBroker(prohibited_local_ips=["172-("])


def test_the_broker_skips_a_prohibited_address_and_refuses_when_all_are() -> None:
    """On this host's real interfaces: the listener for other hosts is opened on the first allowed address, and
    with every address prohibited a launch gets the message naming the setting."""
    ips = public_ips()
    assert len(ips) >= 2, f"this test needs two public addresses (dockerd's bridge gives one): {ips}"

    async def scenario() -> tuple[str, str]:
        skipping = ResponseBroker(port=0, prohibited_local_ips=[re.escape(ips[0])])
        try:
            address = await skipping.response_address_for(local=False)
        finally:
            await skipping.stop()
        refusing = ResponseBroker(port=0, prohibited_local_ips=[".*"])
        try:
            await refusing.response_address_for(local=False)
        except OSError as err:
            refused = str(err)
        else:
            refused = ""
        finally:
            await refusing.stop()
        return address, refused

    address, refused = asyncio.run(scenario())
    assert address.rpartition(":")[0] == ips[1], address
    assert "matches prohibited_local_ips" in refused and "advertised_ip" in refused, refused


def test_gp_image_paths_are_installed_by_image_bootstrap(tmp_path: Path) -> None:
    """Every Gateway Provisioners path the guide lists exists after ``jupyter image-bootstrap install`` and is the
    same file as ours."""
    from kernelfleet.bootstrap.install import install

    install(["python", "r"], tmp_path)
    for gp_path, our_path in gp_settings.GP_IMAGE_PATHS:
        assert (tmp_path / gp_path).is_file(), gp_path
        assert (tmp_path / gp_path).read_bytes() == (tmp_path / our_path).read_bytes(), gp_path
