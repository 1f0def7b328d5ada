"""The one place kernelfleet-launcher-python's version is written; hatchling reads it for the distribution."""

__version__ = "0.2.0"
