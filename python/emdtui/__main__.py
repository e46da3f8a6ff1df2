"""``python -m emdtui ARGS``: the emdtui command line (the same as the ``emdtui`` binary).

The CLI runs in this process from the compiled extension, so no separate binary is needed; the
terminal UI (``python -m emdtui FILE``) works too. Ctrl-C ends the process as it ends the binary.
"""

import signal
import sys

from emdtui._emdtui import run_cli


def main() -> int:
    # the binary dies on SIGINT / a closed pipe: restore those defaults over Python's handlers
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.stdout.flush()
    return run_cli(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
