"""The framework's limit on this machine: a bare Litestar handler returning a constant, nothing else.

Served by uvicorn exactly as the control plane is (`bench.stack.api_process`), so the entitlement check's
requests/s can be read against it.
"""

from __future__ import annotations

from litestar import Litestar, get


@get("/constant", sync_to_thread=False)
def constant() -> dict[str, bool]:
    return {"allowed": True}


def create_bare_app() -> Litestar:
    return Litestar(route_handlers=[constant])
