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


class prefixed:  # noqa: N801 - used as a context manager, reads as prose
    """Context manager prefixing the one-line message of an :class:`InputError`
    raised inside it with ``prefix`` (a config key or a file), unless the message
    already starts with ``config key``.

    Library functions name their own parameters (``threshold_value: method
    'manual' needs value``); the workflow step that passes a config section or a
    file to them wraps the call so the user also sees where to fix it::

        with config_key("rings.mask"):
            seg.threshold(image, **mask)

    re-raises as ``config key rings.mask: threshold_value: method 'manual' needs value``.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __enter__(self) -> "prefixed":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None and isinstance(exc, InputError):
            message = str(exc)
            if not message.startswith("config key"):
                raise InputError(f"{self.prefix}: {message}") from exc
        return False


def config_key(key: str) -> prefixed:
    """:class:`prefixed` with ``config key <key>``."""
    return prefixed(f"config key {key}")
