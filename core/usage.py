"""A process-wide count of the model tokens this process has read or written, for budgets.

The generator and the training loop add to it; the worker reads it before and while a job runs
and stops a job that spends more than its token budget. Counting here, not in the job, means
no job body can forget to report.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_tokens = 0


def add_tokens(n: int) -> None:
    """Count `n` more tokens (prompt, generated or trained on)."""
    global _tokens
    with _lock:
        _tokens += int(n)


def tokens_used() -> int:
    """Tokens counted since this process started."""
    return _tokens
