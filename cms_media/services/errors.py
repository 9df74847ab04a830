"""Errors that services raise for the user to read."""


class ValidationError(ValueError):
    """Input the user can fix; ``str()`` says how."""
