"""The one exception type fourm raises for bad user input (configs, files, names, strings).

Command-line entry points catch it and print a single ``error: ...`` line instead of a traceback.
"""


class FourmError(ValueError):
    """A user-facing error whose message names the bad value and what was expected."""
