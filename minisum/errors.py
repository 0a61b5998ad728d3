"""The one exception type that means "the user asked for something impossible".

Scripts catch `UserError`, print its message on one line and exit with status 2:
no traceback for a typo in a flag or a missing file. Everything else is a bug and
keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: the message says what was wrong and what to do."""
