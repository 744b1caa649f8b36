"""How the ``nnunet-hecktor`` command shows the library's log records.

Library code reports through :mod:`logging` (logger names under ``nnunet_hecktor``) and never
prints; the command line decides what reaches the terminal: INFO records go to stdout as plain
lines, WARNING and above to stderr prefixed with their level (``warning: ...``, ``error: ...``).
Python users of the API configure logging as they like (nothing is shown by default but
warnings, through Python's last-resort handler).
"""

from __future__ import annotations

import logging
import sys

PACKAGE_LOGGER = "nnunet_hecktor"


class _TerminalHandler(logging.Handler):
    """INFO to the current ``sys.stdout``, WARNING+ to the current ``sys.stderr`` (looked up per record,
    so redirected streams such as pytest's capture are honoured)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if record.levelno >= logging.WARNING:
                stream = sys.stderr
                message = f"{record.levelname.lower()}: {message}"
            else:
                stream = sys.stdout
            stream.write(message + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)


def configure_cli_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Show the plugin's log records on the terminal (idempotent).

    Parameters
    ----------
    quiet : bool
        Only warnings and errors.
    verbose : bool
        Debug records too (wins over ``quiet``).
    """
    log = logging.getLogger(PACKAGE_LOGGER)
    handler = next((h for h in log.handlers if isinstance(h, _TerminalHandler)), None)
    if handler is None:
        handler = _TerminalHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    # Records still propagate: with no root handler (the command line) nothing is shown twice, and
    # handlers the caller installed on the root (pytest's caplog, an application's) keep seeing them.
