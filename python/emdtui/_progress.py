"""Progress of engine calls: a callback ``f(done, total)`` called about every 100 ms from the
calling thread while the work runs with the GIL released; a tqdm bar when tqdm is installed."""

from __future__ import annotations

from typing import Any, Callable, Optional


class TqdmProgress:
    """A tqdm bar fed by ``(done, total)`` calls; closed by :meth:`close`."""

    def __init__(self, desc: str):
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self._desc = desc
        self._bar = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            if not total and not done:
                return
            self._bar = self._tqdm(total=total or None, desc=self._desc, leave=False, dynamic_ncols=True)
        if total and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def callback_for(progress: Any, desc: str) -> Optional[Callable[[int, int], Any]]:
    """None/True: a tqdm bar when tqdm is installed (else nothing); False: nothing; a callable:
    itself."""
    if progress is False:
        return None
    if callable(progress):
        return progress
    try:
        return TqdmProgress(desc)
    except ImportError:
        return None


def run_with_progress(method: Callable, args: list, progress: Any, desc: str):
    """``method(args, callback)`` with the progress reporting asked for."""
    cb = callback_for(progress, desc)
    try:
        return method(args, cb)
    finally:
        close = getattr(cb, "close", None)
        if isinstance(cb, TqdmProgress) and close is not None:
            close()
