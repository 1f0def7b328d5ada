"""``python -m kernelfleet.launcher``: the entry point a kernelspec's argv or the bootstrap script runs."""

import sys

from kernelfleet.launcher.supervisor import main

sys.exit(main())
