"""The one exception type for bad user input.

Anything a user can get wrong (a corrupt image, a wrong bit depth, a missing file, an impossible
setting) raises :class:`InputError` with a one-line message that names the problem. The CLI turns it
into that line on stderr and exit code 2, without a traceback.
"""


class InputError(ValueError):
    """Bad user input: the message is one line that names the problem."""
