"""The one error type of the data package; its message is a single line meant for the user."""

from __future__ import annotations

from searchr1.errors import UserError


class DataError(UserError, RuntimeError):
    """A data file is missing, unreadable or not in the expected schema."""
