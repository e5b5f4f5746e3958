"""Every problem a user can fix, as one family of exceptions.

The app and the CLI catch ``UserError`` and show its message as it is: each message names what is
wrong and what to do. Anything else is a bug and is logged with its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """A problem with what the user gave us; the message is meant for them."""


class ImageError(UserError):
    """An image or mask that cannot be restored (unreadable, too large, empty mask, …)."""


class CheckpointError(UserError):
    """A file, state dict or config that is not (exactly) a DiffIR network."""


class WeightsNotFound(UserError, FileNotFoundError):
    """No weights for a task anywhere we look; the message lists the places."""


class OptionsError(UserError):
    """A restoration option out of range, an unknown task/device/precision, or the wrong network."""
