"""Errors that end a run with a message for the user rather than a traceback."""


class RunStopped(RuntimeError):
    """The run cannot usefully go on (e.g. nothing left to learn from); the message says why
    and what to check. The CLI prints it on one line and exits 1; the run directory stays."""
