"""A test double of Stripe Connect transfers (`POST /v1/transfers`, `GET /v1/transfers/{id}`), served by the
dev stack's localstripe process, because localstripe has no Connect and no installable server does.

It keeps to Stripe's contract where the control plane relies on it: an `Idempotency-Key` answers a repeat with
the first transfer; an amount must be a positive integer in a known currency; a destination must look like a
connected account, and one whose id starts with `acct_closed` is refused as Stripe refuses a closed account.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from aiohttp import web

CLOSED_PREFIX = "acct_closed"
_KEY_PREFIX = "connect_transfer:"
_IDEMPOTENCY_PREFIX = "connect_transfer_key:"


def _error(status: int, message: str, code: str) -> web.Response:
    return web.json_response(
        {"error": {"type": "invalid_request_error", "message": message, "code": code}}, status=status
    )


def add_transfer_routes(app: web.Application, store: dict[str, Any]) -> None:
    """Register the routes on localstripe's app; transfers live in its (persisted) store."""

    async def create(request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        if key and _IDEMPOTENCY_PREFIX + key in store:
            return web.json_response(store[_KEY_PREFIX + store[_IDEMPOTENCY_PREFIX + key]])
        form = await request.post()
        try:
            amount = int(str(form.get("amount", "")))
        except ValueError:
            return _error(400, "amount must be an integer", "parameter_invalid_integer")
        currency = str(form.get("currency", "")).lower()
        destination = str(form.get("destination", ""))
        if amount <= 0:
            return _error(400, "amount must be positive", "amount_too_small")
        if len(currency) != 3 or not currency.isalpha():
            return _error(400, "currency is not supported", "parameter_invalid")
        if not destination.startswith("acct_"):
            return _error(400, f"No such destination: '{destination}'", "resource_missing")
        if destination.startswith(CLOSED_PREFIX):
            return _error(400, "The destination account is closed", "account_closed")
        transfer = {
            "id": "tr_" + secrets.token_hex(12),
            "object": "transfer",
            "amount": amount,
            "currency": currency,
            "destination": destination,
            "created": int(time.time()),
            "livemode": False,
            "reversed": False,
            "amount_reversed": 0,
            "transfer_group": form.get("transfer_group"),
            "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
        }
        store[_KEY_PREFIX + str(transfer["id"])] = transfer
        if key:
            store[_IDEMPOTENCY_PREFIX + key] = transfer["id"]
        return web.json_response(transfer)

    async def retrieve(request: web.Request) -> web.Response:
        transfer = store.get(_KEY_PREFIX + request.match_info["id"])
        if transfer is None:
            return _error(404, "No such transfer", "resource_missing")
        return web.json_response(transfer)

    app.router.add_post("/v1/transfers", create)
    app.router.add_get("/v1/transfers/{id}", retrieve)
