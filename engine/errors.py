"""Errors that reach the user as one line (CLI exit status 2), never as a traceback."""


class UserError(Exception):
    """Bad input from the user: the message names the problem and the fix, on one line."""

    exit_code = 2
