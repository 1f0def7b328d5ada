"""The one error type of the installer, so the CLI can report it in a line instead of a traceback."""


class BootstrapError(Exception):
    """An install request that cannot be carried out; the message says what is missing and how to fix it."""
