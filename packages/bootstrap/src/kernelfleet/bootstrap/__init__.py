"""Kernel Fleet image bootstrap: `bootstrap-kernel.sh` and `jupyter image-bootstrap install`.

Kernel images are started by the container provisioners with environment variables only; the
bootstrap script installed by this package turns them into the right launcher's command line.
"""

__version__ = "0.1.0"
