"""Readers that misbehave on purpose, registered for test-only extensions; a module of its own so
that the parser's child process imports it in milliseconds."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from core.corpus import register_reader


@register_reader(".slowtest")
def read_slowly(path: Path) -> str:
    """Hangs past any wall limit a test sets."""
    time.sleep(60)
    return "never"


@register_reader(".crashtest")
def read_and_crash(path: Path) -> str:
    """Dies the way a C parser dies on malloc failure."""
    os.kill(os.getpid(), signal.SIGSEGV)
    return "never"
