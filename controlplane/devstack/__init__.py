"""The embedded dev stack: real PostgreSQL, Redis, OpenBao and a Stripe double under one folder.

`make run` and the tests start it when no external URL is configured. Its third-party pieces (the
`devstack` extra) are imported only when a service starts, so the main CLI loads without them.
"""

from controlplane.devstack.errors import DevStackError
from controlplane.devstack.stack import DevStack

__all__ = ["DevStack", "DevStackError"]
