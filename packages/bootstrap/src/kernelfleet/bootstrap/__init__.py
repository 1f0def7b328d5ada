"""Kernel Fleet image bootstrap: `bootstrap-kernel.sh` and `jupyter image-bootstrap install`.

Kernel images are started by the container provisioners with environment variables only; the
bootstrap script installed by this package turns them into the right launcher's command line.
"""

from kernelfleet.bootstrap._version import __version__

__all__ = ["__version__"]
