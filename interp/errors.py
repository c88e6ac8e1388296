"""The one exception type that means "the user gave us something we cannot use".

The CLI turns it into a single line on stderr and exit status 2; the app shows it as a message.
Everything else is a bug and keeps its traceback.
"""


class InterpError(Exception):
    """Bad input: a missing or corrupt file, a name that does not exist, a shape that does not fit.

    The message should say what is wrong and what to do about it, on one line.
    """
