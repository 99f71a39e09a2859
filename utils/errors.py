"""Errors that end a run with one clear line instead of a traceback."""

import sys


class UserError(Exception):
    """A problem with the user's input (config, paths, files); entry points print only the message."""


def report(error: UserError) -> int:
    """Write 'error: <message>' as one line on stderr; return the exit status for user errors."""
    sys.stderr.write(f"error: {error}\n")
    return 2
