"""The warm-pool settings every pooling provisioner shares (``distributed-provisioner``, ``docker-provisioner``,
``docker-swarm-provisioner``, ``kubernetes-provisioner``): one set of traits, configurable per kernelspec or as
``c.<Provisioner>.warm_pool_*`` (docs/warm-pools.md)."""

from __future__ import annotations

from typing import Any

from traitlets import Float, Integer, default
from traitlets.config import Configurable

from kernelfleet.protocol import contract
from kernelfleet.provisioners.envconfig import env_number
from kernelfleet.provisioners.launch_events import Phase
from kernelfleet.provisioners.pool.manager import PoolSettings, WarmPool
from kernelfleet.provisioners.pool.spec import pool_id


class WarmPoolConfig(Configurable):
    """Mixed into a provisioner whose engine can keep standbys; read by its ``*_pool`` builder."""

    warm_pool_size = Integer(
        help="Standby launchers kept warm for this kernelspec, claimed by its next starts (env KF_WARM_POOL_SIZE; "
        "default 0: none). Python and R kernels on localhost or Docker, Python kernels on SSH hosts, Swarm or "
        "Kubernetes, Scala (Toree) kernels on localhost; anything else starts cold "
        "(docs/warm-pools.md)."
    ).tag(config=True)
    warm_pool_idle_ttl = Float(
        help="Seconds a standby may wait unclaimed before it is stopped; the pool refills at the next start of the "
        "kernelspec (env KF_WARM_POOL_IDLE_TTL; default 1800)."
    ).tag(config=True)
    warm_pool_max_starting = Integer(
        4, help="Most standbys of one pool starting at once, so a refill never crowds out the host."
    ).tag(config=True)
    warm_pool_refill_delay = Float(
        1.0, help="Seconds that launches from the pool must pause (each claimed kernel has reported) before "
        "replacement standbys start, so their start-up does not slow the new kernels' first cells; a steady stream "
        "of launches puts the refill off at most five times this."
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._taken_from: WarmPool | None = None  # the warm pool this launch took a standby from

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        """The provisioner's launch; then the pool this launch took a standby from refills (``WarmPool.launched``),
        whether the kernel reported or the launch failed."""
        try:
            return await super().launch_kernel(cmd, **kwargs)  # type: ignore[misc]
        finally:
            pool, self._taken_from = self._taken_from, None
            if pool is not None:
                pool.launched()

    def pool_chosen(self, **fields: Any) -> None:
        """The launch event of a claimed standby (``start_from_pool``): its pool stands for the host a cold launch
        chooses."""
        chosen = self._taken_from.pool_id if self._taken_from is not None else ""
        progress: Any = self.progress
        progress.emit(Phase.HOST_CHOSEN, message=f"warm pool {chosen}", **fields)

    @default("warm_pool_size")
    def _warm_pool_size_default(self) -> int:
        return int(env_number(("KF_WARM_POOL_SIZE",), 0))

    @default("warm_pool_idle_ttl")
    def _warm_pool_idle_ttl_default(self) -> float:
        return env_number(("KF_WARM_POOL_IDLE_TTL",), 1800.0)

    def pool_settings(self, pool_id: str) -> PoolSettings:
        """The sizing of pool ``pool_id`` from these settings (the engines' ``*_pool`` builders)."""
        # A standby registers once warm: a Toree standby's compiler warm-up can take as long as a cold launch.
        register_timeout = max(PoolSettings.register_timeout, float(getattr(self, "launch_timeout", 0.0)))
        return PoolSettings(pool_id, int(self.warm_pool_size), float(self.warm_pool_idle_ttl),
                            max_starting=int(self.warm_pool_max_starting), register_timeout=register_timeout,
                            refill_delay=float(self.warm_pool_refill_delay))

    def pool_identity(self, *engine_values: Any) -> str:
        """The id of the pool a launch of this provisioner takes from (``pool.spec.pool_id``): one per kernelspec (its
        argv, env and metadata), server, response address and ``engine_values`` (what the engine's standbys are made
        of); the container engines' ``*_pool`` builders call it."""
        spec: Any = getattr(self, "kernel_spec", None)
        launch_env: dict[str, str] = getattr(self, "launch_env", {})
        return pool_id(self.pool_kernel_name(), type(self).__name__, list(spec.argv) if spec else [],
                       dict(spec.env) if spec else {}, spec.metadata if spec else {}, getattr(self, "server_id", ""),
                       launch_env.get(contract.RESPONSE_ADDRESS, ""), *engine_values)

    def pool_kernel_name(self) -> str:
        """The kernelspec's name (its display name outside a kernel manager): the first part of its pools' ids."""
        spec: Any = getattr(self, "kernel_spec", None)
        parent: Any = getattr(self, "parent", None)
        return getattr(parent, "kernel_name", "") or (spec.display_name if spec else "") or "kernel"
