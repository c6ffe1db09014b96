"""Errors that the CLI turns into one line and an exit code.

Every error a user can cause (bad input, a missing tool) is a `UsageError` or a
`MissingCapability` and exits 2; a failure of lblab itself exits 3. The message is the whole
story: it names what to fix, so the CLI prints it without a traceback.
"""


class LblabError(Exception):
    exit_code = 3


class UsageError(LblabError):
    """The user asked for something malformed: an unknown name, a bad `--set`, a bad path."""

    exit_code = 2


class MissingCapability(LblabError):
    """The machine lacks a tool or kernel feature an experiment needs."""

    exit_code = 2


class LabError(LblabError):
    """The lab could not be brought up or torn down (a readiness wait timed out, ...)."""

    exit_code = 3


class LabInterrupted(LblabError):
    """SIGINT/SIGTERM arrived: raised so that every `with` block unwinds normally."""

    exit_code = 130
