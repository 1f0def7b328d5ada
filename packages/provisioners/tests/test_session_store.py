"""The file session store: 0600 files in a 0700 directory, whole files only, and files it cannot trust left alone."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from kernelfleet.provisioners.sessions.store import FileSessionStore, KernelSession, SessionError

KEY = "0f1e2d3c-hmac-key-never-logged"


def session(kernel_id: str = "k-1") -> KernelSession:
    return KernelSession(kernel_id, "kf_python", "distributed-provisioner",
                         {"key": KEY, "shell_port": 1}, {"comm_key": "c2VjcmV0", "remote_pid": 7})


async def test_saved_files_are_private_and_whole(tmp_path: Path) -> None:
    directory = tmp_path / "sessions"
    directory.mkdir(mode=0o755)  # an existing directory others can enter is tightened
    store = FileSessionStore(directory=str(directory))
    await store.save(session())
    await store.save(session())  # replaced in place, no temporary file left
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert [p.name for p in directory.iterdir()] == ["k-1.json"]
    assert stat.S_IMODE((directory / "k-1.json").stat().st_mode) == 0o600
    assert await store.load_all() == [session()]
    await store.remove("k-1")
    await store.remove("k-1")  # removing twice is no error
    assert await store.load_all() == []


async def test_untrusted_files_are_left_alone_without_their_content_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FileSessionStore(directory=str(tmp_path))
    await store.save(session("good"))
    (tmp_path / "broken.json").write_text('{"kernel_id": "broken", "key": "' + KEY + '"')
    (tmp_path / "other.json").write_text(session("someone-else").to_json())
    (tmp_path / ".half.1234.tmp").write_text(KEY)  # a write a crashed server did not finish
    with caplog.at_level(logging.WARNING):
        loaded = await store.load_all()
    assert [s.kernel_id for s in loaded] == ["good"]
    assert (tmp_path / "broken.json").exists() and (tmp_path / "other.json").exists()
    assert not (tmp_path / ".half.1234.tmp").exists()
    assert "broken.json" in caplog.text and "other.json" in caplog.text
    assert KEY not in caplog.text


async def test_a_kernel_id_never_becomes_a_path_outside_the_store(tmp_path: Path) -> None:
    store = FileSessionStore(directory=str(tmp_path / "sessions"))
    with pytest.raises(SessionError, match="not a valid kernel id"):
        await store.save(session("../escape"))
    assert not (tmp_path / "escape.json").exists()
