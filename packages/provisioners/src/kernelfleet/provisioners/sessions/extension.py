"""The jupyter_server extension that keeps Kernel Fleet kernels across server restarts.

While the server runs it follows the kernel manager's ``kernel_actions`` events: a kernel that has
started or restarted has its session saved, one that was shut down (or died for good) has it removed.
When the server starts again, every saved kernel is taken over (``reattach``, the default) or shut
down (``shutdown``): a kernel its engine says is gone is forgotten with one log line; one that cannot
be reached yet (host, dockerd or API server down) stays saved and is tried again in the background,
with a growing delay, until it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from jupyter_client.manager import KernelManager
from jupyter_server.serverapp import ServerApp
from traitlets import Bool, Enum, Float, Type
from traitlets.config import LoggingConfigurable

from kernelfleet.provisioners.presence import Presence
from kernelfleet.provisioners.sessions.reattach import capture, load_kernel, register
from kernelfleet.provisioners.sessions.store import FileSessionStore, KernelSession, SessionError, SessionStore

KERNEL_ACTIONS = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"


class KernelSessions(LoggingConfigurable):
    """Configured as ``c.KernelSessions.*``; one per server, made when the extension loads."""

    on_start = Enum(
        ("reattach", "shutdown"), default_value="reattach",
        help="What a starting server does with the kernels a previous run left: 'reattach' takes them over (GET "
        "/api/kernels lists them, clients reconnect with their state); 'shutdown' stops them and forgets them.",
    ).tag(config=True)
    store_class = Type(
        FileSessionStore, klass=SessionStore, help="Where sessions are kept (default: a 0600 file per kernel).",
    ).tag(config=True)
    retry_delay = Float(1.0, help="Seconds before the first new attempt at a saved kernel that could not be "
                        "reached; doubled after each attempt up to max_retry_delay.").tag(config=True)
    max_retry_delay = Float(60.0, help="Longest wait between attempts at an unreachable saved kernel.").tag(config=True)
    sweep_on_start = Bool(
        True, help="At start, remove what a previous run of this server left that no saved session claims (kernels of "
        "launches it was in the middle of, or whose session was lost): processes, containers, services, pods, "
        "Secrets, namespaces, SparkApplications and YARN applications carrying this server's identity "
        "(ServerIdentity.server_id), as `jupyter kernelfleet sweep --yes` would. Runs in the background; objects "
        "younger than this server are left.",
    ).tag(config=True)

    def __init__(self, serverapp: ServerApp, **kwargs: Any) -> None:
        super().__init__(parent=serverapp, log=serverapp.log, **kwargs)
        self.serverapp = serverapp
        self.store: SessionStore = self.store_class(parent=self, log=self.log)
        # One store operation at a time, in event order: a kernel's "shutdown" must not overtake its "start".
        self._store_lock = asyncio.Lock()
        self._watched: set[str] = set()
        self._background: set[asyncio.Task[Any]] = set()  # retries and "dead" handling, referenced until done

    @property
    def kernel_manager(self) -> Any:
        return self.serverapp.kernel_manager

    # ------------------------------------------------------------------------------------- while running
    def link(self) -> None:
        """Called at load: from now on every kernel start, restart and shutdown reaches ``_on_kernel_action``."""
        self.serverapp.event_logger.add_listener(schema_id=KERNEL_ACTIONS, listener=self._on_kernel_action)

    async def _on_kernel_action(self, logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        kernel_id, action = data.get("kernel_id"), data.get("action")
        if not kernel_id or action not in ("start", "restart", "shutdown"):
            return
        async with self._store_lock:
            if action == "shutdown" or kernel_id not in self.kernel_manager:
                await self._forget(kernel_id)
            elif data.get("status") == "success":
                await self._save(self.kernel_manager.get_kernel(kernel_id))
            elif action == "start":
                await self._forget(kernel_id)

    async def _save(self, km: KernelManager) -> None:
        try:
            session = await capture(km)
            if session is None:
                return
            await self.store.save(session)
        except Exception as err:  # the kernel runs on; only a server restart would lose it
            self.log.warning("Kernel %s: its session could not be saved (%s): %s", km.kernel_id,
                             self.store.describe(), err)
            return
        self._watch(km)
        self.log.debug("Kernel %s: session saved (%s)", km.kernel_id, self.store.describe())

    async def _forget(self, kernel_id: str) -> None:
        self._watched.discard(kernel_id)
        try:
            await self.store.remove(kernel_id)
        except (OSError, SessionError) as err:
            self.log.warning("Kernel %s: its saved session could not be removed: %s", kernel_id, err)

    def _watch(self, km: KernelManager) -> None:
        """A kernel that dies and cannot be restarted is dropped by the server without a shutdown event."""
        kernel_id = str(km.kernel_id)
        if kernel_id in self._watched:
            return
        self._watched.add(kernel_id)

        def dead() -> None:
            self._spawn(self._on_kernel_action(None, KERNEL_ACTIONS, {
                "kernel_id": kernel_id, "action": "shutdown", "status": "success"}))

        km.add_restart_callback(dead, "dead")

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------------------------- at start
    async def start(self) -> None:
        """Called once the event loop runs: take over (or shut down) every kernel a previous run saved."""
        try:
            sessions = await self.store.load_all()
        except (OSError, SessionError) as err:
            self.log.error("Kernel sessions: cannot read %s: %s", self.store.describe(), err)
            return
        self.log.info("Kernel sessions: %d saved kernel(s) in %s (on_start=%s)", len(sessions),
                      self.store.describe(), self.on_start)
        if self.sweep_on_start:
            self._spawn(self._sweep({kid for session in sessions for kid in session.claimed_ids()},
                                    started=time.monotonic()))
        await asyncio.gather(*(self._take_over(session, first=True) for session in sessions))

    async def _sweep(self, claimed: set[str], *, started: float) -> None:
        """Remove the previous run's orphans: what carries this server's identity and no saved session claims.

        Anything younger than this server may be a launch it is making right now, so the age limit grows with
        the time since start; saved sessions are claimed whether or not they can be taken over."""
        from kernelfleet.provisioners.sweep import find_orphans, remove_orphans  # engines' clients: only if used

        try:
            orphans = await find_orphans(claimed, parent=self.serverapp, min_age=time.monotonic() - started + 1.0)
        except Exception as err:  # a sweep that fails must not take the server down; the command can be run by hand
            self.log.warning("Kernel sessions: the orphan sweep failed: %s", err)
            return
        for engine, reason in orphans.unavailable.items():
            self.log.debug("Kernel sessions: orphan sweep did not search %s: %s", engine, reason)
        if orphans:
            self.log.info("Kernel sessions: removing %d object(s) a previous run left", len(orphans))
            await remove_orphans(orphans)

    async def _take_over(self, session: KernelSession, *, first: bool) -> bool:
        """One attempt at a saved kernel; False when it could not be reached (a retry is scheduled)."""
        kernel_id = session.kernel_id
        if kernel_id in self.kernel_manager:
            return True
        km: KernelManager | None = None
        try:
            km, presence = await load_kernel(self.kernel_manager, session)
        except SessionError as err:
            self.log.warning("%s; its saved session is left alone", err)
            return True
        except Exception as err:  # the engine's client failed in a way the provisioner did not classify
            self.log.warning("Kernel %s: cannot be taken over yet: %s", kernel_id, err)
            presence = Presence.UNREACHABLE
        if presence is Presence.GONE:
            assert km is not None and km.provisioner is not None
            with contextlib.suppress(Exception):  # whatever is left of it goes; the session goes in any case
                await km.provisioner.cleanup(restart=False)
            async with self._store_lock:
                await self._forget(kernel_id)
            self.log.info("Kernel %s: gone while the server was down; its saved session is removed", kernel_id)
            return True
        if presence is Presence.UNREACHABLE:
            if km is not None and km.provisioner is not None:
                with contextlib.suppress(Exception):
                    await km.provisioner.detach()
            if first:
                self.log.warning("Kernel %s: cannot be reached yet; its session is kept and retried in the background",
                                 kernel_id)
                self._spawn(self._retry(session))
            return False
        assert km is not None
        await register(self.kernel_manager, km, session)
        if self.on_start == "shutdown":
            self.log.info("Kernel %s: left by the previous server; shutting it down (on_start=shutdown)", kernel_id)
            await self.kernel_manager.shutdown_kernel(kernel_id)  # its shutdown event removes the session
            return True
        self.log.info("Kernel %s: reattached (%s, %s)", kernel_id, session.kernel_name, session.provisioner_name)
        async with self._store_lock:
            await self._save(km)  # its tunnels may listen on new local ports
        return True

    async def _retry(self, session: KernelSession) -> None:
        delay = self.retry_delay
        while True:
            await asyncio.sleep(delay)
            self.log.debug("Kernel %s: trying again to take it over", session.kernel_id)
            if await self._take_over(session, first=False):
                return
            delay = min(delay * 2, self.max_retry_delay)


def _load_jupyter_server_extension(serverapp: ServerApp) -> None:
    """jupyter_server calls this at start-up when the extension is enabled."""
    sessions = KernelSessions(serverapp)
    sessions.link()
    serverapp.web_app.settings["kernelfleet_sessions"] = sessions


async def _start_jupyter_server_extension(serverapp: ServerApp) -> None:
    """jupyter_server calls this once its event loop runs."""
    sessions: KernelSessions = serverapp.web_app.settings["kernelfleet_sessions"]
    await sessions.start()
