"""The one error the dev stack raises: a service could not be started, reached or stopped."""


class DevStackError(RuntimeError):
    """A dev-stack service failed; the message says which one and ends with the tail of its log."""
