"""The one exception type for errors a user can cause (bad input, missing files, unknown names).

The CLI turns a :class:`SearchkitError` into one line on stderr and exit code 2; any other
exception is a bug and keeps its traceback.
"""


class SearchkitError(Exception):
    """A user-facing error: the message says what was wrong and how to fix it."""
