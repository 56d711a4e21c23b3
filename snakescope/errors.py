"""User-facing errors.

Every problem a user can fix (bad file, bad config value, channel not found, ...)
raises :class:`InputError` with a one-line message that names the file or the
config key and says what to do. The workflow prints that line on the console and
the full traceback in the rule's log.
"""

from __future__ import annotations


class InputError(ValueError):
    """A problem with the user's data or configuration, fixable by the user.

    The message is a single line: ``<file or config key>: <what is wrong>; <fix>``.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
