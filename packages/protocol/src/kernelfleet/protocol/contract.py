"""The launcher contract (docs/protocol.md, section 2): what a launcher receives and how it reads it.

One definition of the names, flags, defaults, retry counts and timeouts shared by the server (which
sets the variables and fills the argv placeholders: ``kernelfleet.provisioners``) and the launchers
(the Python launcher imports this module; the R and Scala launchers keep their own copies and are
checked against ``docs/launcher-vectors.json``, written from this module by
``tools/make_launcher_vectors.py``). Pure data and pure functions only: nothing here reads the
process environment, so the server and the launchers call the same rule with their own mappings.

Precedence, the same in every launcher: a command-line option wins over its environment variable,
the variable over its ``EG_`` spelling; a value that is empty or blank after trimming, or still an
unfilled ``{placeholder}``, counts as unset. The launch token is read from the environment only
(``LAUNCH_TOKEN``, else the file ``LAUNCH_TOKEN_FILE`` names), never from argv.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# -- variables the server always sets (a start request's value is replaced) ------------------------------------
KERNEL_ID = "KERNEL_ID"
RESPONSE_ADDRESS = "RESPONSE_ADDRESS"
PUBLIC_KEY = "PUBLIC_KEY"
PORT_RANGE = "PORT_RANGE"
LAUNCH_TOKEN = "LAUNCH_TOKEN"
#: Instead of LAUNCH_TOKEN (container provisioners): a file holding the token, read when LAUNCH_TOKEN is unset.
LAUNCH_TOKEN_FILE = "LAUNCH_TOKEN_FILE"
SERVER_SET = (KERNEL_ID, LAUNCH_TOKEN, RESPONSE_ADDRESS, PUBLIC_KEY, PORT_RANGE)
# Protocol 2.1 (section 8): set only for a warm pool's standby launcher, which then waits for its claim.
STANDBY_ID = "KF_STANDBY_ID"
STANDBY_POOL = "KF_STANDBY_POOL"

# -- variables an operator (kernelspec, image) sets --------------------------------------------------------------
TRANSPORT_ENCRYPTION = "TRANSPORT_ENCRYPTION"
KERNEL_SPARK_CONTEXT_INIT_MODE = "KERNEL_SPARK_CONTEXT_INIT_MODE"
KERNEL_CLUSTER_TYPE = "KERNEL_CLUSTER_TYPE"
KERNEL_CLASS_NAME = "KERNEL_CLASS_NAME"
KERNEL_IP = "KERNEL_IP"
LOG_LEVEL = "LOG_LEVEL"

#: Enterprise Gateway's spellings, accepted after the current name for old kernelspecs.
LEGACY_PREFIX = "EG_"
#: Enterprise Gateway spelled the options as traitlets of its process proxy: ``--RemoteProcessProxy.kernel-id``.
LEGACY_OPTION_PREFIX = "--RemoteProcessProxy."


@dataclass(frozen=True)
class LauncherInput:
    """One input a launcher reads: its option (if argv may carry it), its variable and that variable's old names."""

    variable: str
    option: str | None = None
    legacy: tuple[str, ...] = ()
    required: bool = False
    default: str | None = None

    @property
    def variables(self) -> tuple[str, ...]:
        """The environment names in the order they are consulted."""
        return (self.variable, *self.legacy)

    @property
    def label(self) -> str:
        """How errors name the input: ``--port-range / PORT_RANGE``."""
        return f"{self.option} / {self.variable}" if self.option else self.variable


KERNEL_ID_INPUT = LauncherInput(KERNEL_ID, "--kernel-id", required=True)
RESPONSE_ADDRESS_INPUT = LauncherInput(RESPONSE_ADDRESS, "--response-address", (f"EG_{RESPONSE_ADDRESS}",), True)
PUBLIC_KEY_INPUT = LauncherInput(PUBLIC_KEY, "--public-key", (f"EG_{PUBLIC_KEY}",), True)
PORT_RANGE_INPUT = LauncherInput(PORT_RANGE, "--port-range", (f"EG_{PORT_RANGE}",), default="0..0")
SPARK_MODE_INPUT = LauncherInput(KERNEL_SPARK_CONTEXT_INIT_MODE, "--spark-context-initialization-mode", default="none")
TRANSPORT_ENCRYPTION_INPUT = LauncherInput(TRANSPORT_ENCRYPTION, "--transport-encryption", default="disabled")
CLUSTER_TYPE_INPUT = LauncherInput(KERNEL_CLUSTER_TYPE, "--cluster-type")
DEFAULT_KERNEL_CLASS = "ipykernel.ipkernel.IPythonKernel"
KERNEL_CLASS_INPUT = LauncherInput(KERNEL_CLASS_NAME, "--kernel-class-name", default=DEFAULT_KERNEL_CLASS)
KERNEL_IP_INPUT = LauncherInput(KERNEL_IP, default="0.0.0.0")
LOG_LEVEL_INPUT = LauncherInput(LOG_LEVEL, default="INFO")

#: Every input the launchers share (the Python launcher alone also reads the cluster type and kernel class).
COMMON_INPUTS = (KERNEL_ID_INPUT, RESPONSE_ADDRESS_INPUT, PUBLIC_KEY_INPUT, PORT_RANGE_INPUT, SPARK_MODE_INPUT,
                 KERNEL_IP_INPUT, LOG_LEVEL_INPUT)
PYTHON_ONLY_INPUTS = (TRANSPORT_ENCRYPTION_INPUT, CLUSTER_TYPE_INPUT, KERNEL_CLASS_INPUT)

#: Option -> variable, for the inputs argv may carry (the server's container provisioners read argv with it).
OPTION_VARIABLES: dict[str, str] = {
    i.option: i.variable for i in (*COMMON_INPUTS, *PYTHON_ONLY_INPUTS) if i.option is not None
}

SPARK_INIT_MODES = ("none", "lazy", "eager")
CLUSTER_TYPES = ("spark", "dask", "none")
#: jupyter_client's policy names; an empty value (GP's placeholder when encryption is off) means disabled.
TRANSPORT_ENCRYPTION_POLICIES = ("disabled", "auto", "required")

# -- the launch token ---------------------------------------------------------------------------------------------
#: A token is 43 characters; a larger file is not a token file.
MAX_TOKEN_FILE_BYTES = 4096

# -- ports (section 5) --------------------------------------------------------------------------------------------
#: Five kernel ports and the comm port.
PORT_COUNT = 6
#: Random picks inside PORT_RANGE per port before the launcher gives up (a full range must fail, not spin).
TRIES_PER_PORT = 50

# -- the report (section 3): retries and timeouts, in seconds ---------------------------------------------------
#: A refused connection to RESPONSE_ADDRESS is retried, with a growing pause, until this long after the first try:
#: the server may still be binding. Only a failed connect is retried; a sent report never is (a copy is a replay).
REPORT_CONNECT_WINDOW = 5.0
#: One connection attempt that gets no answer at all (no refusal) fails the report after this long.
REPORT_CONNECT_TIMEOUT = 10.0
#: The broker's one-line verdict must arrive this long after the report was sent.
REPORT_REPLY_TIMEOUT = 30.0
#: The first and the longest pause between refused connection attempts (doubling in between).
REPORT_RETRY_FIRST_PAUSE = 0.05
REPORT_RETRY_MAX_PAUSE = 0.5


#: What "trimmed" means for every value a launcher reads: these four characters at either end, nothing else (not
#: Python's ``str.strip()`` set, which also drops U+00A0 and other scripts' spaces, nor Java's ``trim``).
BLANKS = " \t\r\n"


def is_placeholder(value: str) -> bool:
    """An argv value the server left unfilled (``{kernel_id}``): the launcher treats it as not given."""
    return value.startswith("{") and value.endswith("}")


def pick(option_value: str | None, env: Mapping[str, str], spec: LauncherInput) -> str | None:
    """The effective value of one input: the option if given, else the first set variable; trimmed of BLANKS.

    Empty, blank and unfilled-placeholder values count as unset. Called by the Python launcher's
    configuration; the R (``kf_pick``) and Scala (``Options.pick``) launchers implement the same rule.
    """
    for value in (option_value, *(env.get(name) for name in spec.variables)):
        if value is None:
            continue
        value = value.strip(BLANKS)
        if value and not is_placeholder(value):
            return value
    return None


def missing_message(spec: LauncherInput) -> str:
    """The error for a required input that is unset: every launcher names the variable and the option."""
    return f"{spec.variable} is required (give {spec.option} or set the {spec.variable} environment variable)"


def choice_message(spec: LauncherInput, choices: tuple[str, ...], value: str) -> str:
    """The error for a value outside a fixed set (Spark mode, cluster type, encryption policy)."""
    return f"{spec.label} must be one of {', '.join(choices)}, not {value!r}"


#: What a token-less launch says; the token never comes from argv, so no option is named.
MISSING_TOKEN_MESSAGE = (
    f"{LAUNCH_TOKEN} is required in the environment, or {LAUNCH_TOKEN_FILE} naming a file that holds it "
    "(the server sets one of them; the token is never taken from the command line)"
)
