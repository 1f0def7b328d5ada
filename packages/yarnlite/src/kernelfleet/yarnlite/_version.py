"""The one place kernelfleet-yarnlite's version is written; hatchling reads it for the distribution."""

__version__ = "0.1.0"
