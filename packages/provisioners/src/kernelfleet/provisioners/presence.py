"""What a provisioner can say about a kernel it took over from a previous server: three answers, not two.

``poll()`` answers jupyter_client's question (running or exited) and must say "running" when it
cannot tell, so that no restarter replaces a kernel over an engine hiccup. Whoever takes a kernel
over after a server restart (the sessions extension) needs the third answer too: a kernel the engine
says is gone is forgotten, one that cannot be reached yet is tried again later.
"""

from __future__ import annotations

import enum


class Presence(enum.Enum):
    RUNNING = "running"  # the engine (or the launcher) says the kernel is there
    GONE = "gone"  # the engine says it no longer exists or has ended
    UNREACHABLE = "unreachable"  # nobody who knows could be asked: the engine, host or launcher did not answer
