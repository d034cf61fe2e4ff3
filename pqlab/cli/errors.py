"""The command line's one error type, shared by the parser and the command handlers."""

USAGE_EXIT = 2  # the exit code of bad input, as argparse uses


class UsageError(Exception):
    """Bad input from the command line; printed as one line, exit code ``USAGE_EXIT``."""
