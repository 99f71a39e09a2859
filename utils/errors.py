"""Errors that end a run with one clear line instead of a traceback."""


class UserError(Exception):
    """A problem with the user's input (config, paths, files); main.py prints only the message."""
