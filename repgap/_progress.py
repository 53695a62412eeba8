"""Optional progress bars (tqdm), shown only on a terminal unless asked for."""
import sys


def progress_enabled(progress):
    from ._config import get_config

    if progress is None:
        progress = get_config()["progress"]
    if progress is None:
        progress = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    if not progress:
        return False
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


class Progress:
    """A tqdm bar when enabled, otherwise a no-op with the same methods."""

    def __init__(self, total, desc, progress=None):
        self._bar = None
        if progress_enabled(progress) and total > 1:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, leave=False)

    def update(self, n=1):
        if self._bar is not None:
            self._bar.update(n)

    def close(self):
        if self._bar is not None:
            self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def monotone_reporter(bar, total):
    """A ``progress(done)`` callback for the kernels: advances ``bar`` to
    ``min(done, total)``, never backwards (some kernels report estimates)."""
    seen = [0]

    def report(done):
        done = min(int(done), total)
        if done > seen[0]:
            bar.update(done - seen[0])
            seen[0] = done

    return report
