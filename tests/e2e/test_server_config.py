"""The server's config file reaches the response broker: ``c.ResponseBroker.*`` in ``jupyter_server_config.py``
of a real jupyter_server process decides where launchers report (issue 10, item 5). Before, the broker was made
without the server's config and listened on its default port whatever the file said."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from jupyter_server_process import ServerProcess, free_port, run_cell


async def test_response_broker_settings_in_the_server_config_file_take_effect(
        tmp_path: Path, make_kernelspec: Callable[..., str]) -> None:
    make_kernelspec("kf_python")
    port = free_port()
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    # port_retries 0: the broker listens on exactly this port or the launch fails.
    (config_dir / "jupyter_server_config.py").write_text(
        f"c.ResponseBroker.port = {port}\nc.ResponseBroker.port_retries = 0\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KF_RESPONSE", "GP_RESPONSE"))}
    env.update(JUPYTER_PATH=str(tmp_path / "share" / "jupyter"), JUPYTER_RUNTIME_DIR=str(tmp_path),
               JUPYTER_CONFIG_DIR=str(config_dir))
    process = ServerProcess(tmp_path, env, tmp_path / "jupyter_server.log")
    server = await process.start()
    try:
        kernel = await server.call("POST", "/api/kernels", {"name": "kf_python"})
        ws = await server.channels(kernel["id"])
        assert (await run_cell(ws, "6 * 7"))["result"] == "42"  # the launcher reported to the broker
        ws.close()
        # The broker the server made listens on the configured port (nothing else here binds it).
        _reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        writer.close()
        await writer.wait_closed()
        await server.call("DELETE", f"/api/kernels/{kernel['id']}")
    finally:
        await process.stop()
