"""Stopping cleanly on Ctrl-C or SIGTERM: the first signal asks the work to stop at its next safe
point (a training step, after writing the resumable ``last.pt`` there; a preprocessing chunk;
between pipeline stages); a second one stops at once, as Python would.

:func:`graceful` installs the handlers (main thread only); :func:`check` raises
:class:`Interrupted` at a safe point once a stop was asked for.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from crnn.errors import UserError

_requested: int | None = None  # the signal that asked to stop
_depth = 0  # graceful() blocks entered: the outermost one forgets the request at its end


class Interrupted(UserError):
    """The work stopped at a safe point because a signal asked it to (how to continue it is
    the command's to say: the `crnn` command adds it, with the flags the work started with)."""

    def __init__(self, signum: int, where: str = "") -> None:
        self.signum, self.where = signum, where
        super().__init__(f"interrupted at {where}" if where else "interrupted")

    @property
    def exit_status(self) -> int:
        """What a shell expects of a process its signal stopped: 128 + the signal (130, 143)."""
        return 128 + self.signum


def requested() -> int | None:
    return _requested


def check(where: str = "") -> None:
    """Raise :class:`Interrupted` when a stop was asked for."""
    if _requested is not None:
        raise Interrupted(_requested, where)


def _ask(signum: int, frame: FrameType | None) -> None:
    global _requested
    if _requested is not None:  # asked twice: stop now
        signal.signal(signum, signal.SIG_DFL)
        raise KeyboardInterrupt
    _requested = signum


@contextlib.contextmanager
def graceful(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Within the block, the first of ``signals`` asks to stop at the next safe point.

    Blocks nest (the command around a run, the training loop inside it, where Prefect's flow
    engine has put its own SIGTERM handler meanwhile): each puts back the handlers it found, and
    the outermost forgets the request when it ends."""
    global _requested, _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.signal(s, _ask) for s in signals}
    _depth += 1
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        _depth -= 1
        if _depth == 0:
            _requested = None
