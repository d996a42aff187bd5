"""Graceful stops: SIGTERM (preemption, a scheduler's time limit) and SIGINT (Ctrl-C) ask the run to stop at the
next optimizer step, after saving, instead of killing it where it stands."""
from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass
from typing import Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class StopRequest:
    """The signal that asked the run to stop (None while none has)."""

    signum: int | None = None


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """While inside, the first SIGTERM or SIGINT is recorded instead of acted on; a second one of the same kind
    acts as it would have (KeyboardInterrupt, termination). Handlers are only installed in the main thread."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

    def record(signum: int, _frame: object) -> None:
        request.signum = signum
        signal.signal(signum, previous[signum])

    for signum in STOP_SIGNALS:
        signal.signal(signum, record)
    try:
        yield request
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
