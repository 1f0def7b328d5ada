"""``python -m kernelfleet.launcher``: the entry point a kernelspec's argv or the bootstrap script runs.

The kernel process is spawned before anything else is imported, so its import of ipykernel (the
longest step of a kernel start) overlaps all of the supervisor's own start-up; see spawn.py.
"""

import sys

from kernelfleet.launcher.spawn import EarlyKernel

kernel = EarlyKernel()

from kernelfleet.launcher.main import main  # noqa: E402

sys.exit(main(kernel=kernel))
