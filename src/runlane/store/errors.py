"""What a store transaction can refuse with (mapped to 404 and 409 by the API)."""


class NotFound(Exception):
    """The thing asked for does not exist (or is not visible)."""


class Conflict(Exception):
    """The request contradicts the current state (409)."""
