"""Stripe, as billing needs it: customers, cards, off-session charges. The adapter boundary.

Only the official SDK talks to Stripe. Its errors stop here (`_translated`, as httpx's `map_exceptions`): a
decline is an outcome, not an exception, and so is a charge Stripe refuses outright (`InvalidRequestError`: an
amount it will not take, a card detached or deleted): `ChargeOutcome(refused=True)` with Stripe's error code;
elsewhere a card Stripe will not accept is `InvalidPaymentMethod`; anything else (network, Stripe down, our key)
is `PaymentProviderUnavailable`, so no `stripe.StripeError` reaches a service or a controller.
Every call that creates something carries an idempotency key derived from domain ids.
The SDK is synchronous; callers run these in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import stripe

from billing.errors import AmountNotChargeable, InvalidPaymentMethod, PaymentProviderUnavailable, WebhookRejected
from billing.money import exponent
from billing.payments.stripe_amounts import to_stripe

T = TypeVar("T")


WEBHOOK_TOLERANCE_SECONDS = 300


def verified_event(payload: bytes, signature: str | None, secrets: Sequence[str]) -> dict[str, Any]:
    """The event, once its `Stripe-Signature` proves Stripe sent it within the last 5 minutes, signed with one of
    `secrets` (two while the endpoint's secret is being rolled)."""
    if not signature:
        raise WebhookRejected("the Stripe-Signature header is missing", reason="unsigned")
    for secret in secrets:
        try:
            event = stripe.Webhook.construct_event(payload, signature, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS)
        except stripe.SignatureVerificationError as error:
            if "timestamp outside the tolerance zone" in str(error).lower():
                raise WebhookRejected("the signature is too old", reason="stale") from None
            continue
        except ValueError:
            raise WebhookRejected("the payload is not JSON", reason="malformed") from None
        return event.to_dict()
    raise WebhookRejected("the signature does not match", reason="forged")


@dataclass(frozen=True, slots=True)
class Card:
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True, slots=True)
class CardSetup:
    """A SetupIntent as the browser's Stripe.js confirms it, and as we read it back once confirmed."""

    id: str
    client_secret: str
    status: str
    customer: str | None
    payment_method: str | None
    tenant_id: str | None  # from its metadata: whose it is


@dataclass(frozen=True, slots=True)
class ChargeOutcome:
    succeeded: bool
    payment_intent_id: str | None
    decline_code: str | None = None
    refused: bool = False  # Stripe refused the request itself (nothing was charged), not a card decline


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except stripe.CardError:
        raise  # a decline: each call decides what it means
    except stripe.InvalidRequestError as error:
        refused = InvalidPaymentMethod(error.user_message or "Stripe refused the request")
        refused.stripe_code = str(error.code or ("resource_missing" if error.http_status == 404 else "invalid_request"))
        intent = error.error.payment_intent if error.error else None
        refused.payment_intent_id = str(intent.id) if intent is not None else None
        raise refused from None
    except stripe.StripeError as error:
        raise PaymentProviderUnavailable(f"Stripe: {type(error).__name__}") from None


class StripeGateway:
    """`reload` makes a client with the key as OpenBao has it now: after Stripe refuses the key (it was
    rotated), the call is made once more with a fresh one."""

    def __init__(self, client: stripe.StripeClient, reload: Callable[[], stripe.StripeClient] | None = None) -> None:
        self._client = client
        self._reload = reload

    def _call(self, operation: Callable[[stripe.StripeClient], T]) -> T:
        try:
            return operation(self._client)
        except stripe.AuthenticationError:
            if self._reload is None:
                raise
            self._client = self._reload()
            return operation(self._client)

    def create_customer(self, tenant_id: str, email: str | None) -> str:
        with _translated():
            params: dict[str, object] = {"metadata": {"tenant_id": tenant_id}}
            if email:
                params["email"] = email
            customer = self._call(
                lambda client: client.v1.customers.create(
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": f"tenant:{tenant_id}:customer"},
                )
            )
        return str(customer.id)

    def start_card_setup(self, customer_id: str, tenant_id: str) -> CardSetup:
        """A SetupIntent for one card of this customer, to be confirmed in the browser by Stripe.js."""
        params: dict[str, object] = {
            "customer": customer_id,
            "usage": "off_session",
            "payment_method_types": ["card"],
            "metadata": {"tenant_id": tenant_id},
        }
        with _translated():
            intent = self._call(
                lambda client: client.v1.setup_intents.create(params=params)  # type: ignore[arg-type]
            )
        return _card_setup(intent)

    def card_setup(self, setup_intent_id: str) -> CardSetup:
        with _translated():
            intent = self._call(lambda client: client.v1.setup_intents.retrieve(setup_intent_id))
        return _card_setup(intent)

    def attach_card(self, payment_method_id: str, customer_id: str) -> Card:
        try:
            with _translated():
                method = self._call(
                    lambda client: client.v1.payment_methods.attach(
                        payment_method_id,
                        params={"customer": customer_id},
                        options={"idempotency_key": f"customer:{customer_id}:attach:{payment_method_id}"},
                    )
                )
        except stripe.CardError as error:
            raise InvalidPaymentMethod(error.user_message or "the card was declined") from None
        card = method.card
        if card is None:
            raise InvalidPaymentMethod("only cards can pay invoices")
        return Card(str(card.brand), str(card.last4), int(card.exp_month), int(card.exp_year))

    def detach_card(self, payment_method_id: str) -> None:
        """The card leaves its customer. A card Stripe no longer has attached counts as detached."""
        try:
            with _translated():
                self._call(
                    lambda client: client.v1.payment_methods.detach(
                        payment_method_id, options={"idempotency_key": f"payment_method:{payment_method_id}:detach"}
                    )
                )
        except InvalidPaymentMethod:
            return

    def charge(
        self,
        idempotency_key: str,
        amount_minor: int,
        currency: str,
        customer_id: str,
        payment_method_id: str,
        metadata: dict[str, str],
    ) -> ChargeOutcome:
        """An off-session PaymentIntent, confirmed at once with the saved card. `amount_minor` is in ISO minor
        units, sent in Stripe's; an amount Stripe cannot take is refused here, as Stripe would."""
        try:
            amount = to_stripe(amount_minor, currency.upper(), exponent(currency.upper()))
        except AmountNotChargeable:
            return ChargeOutcome(False, None, AmountNotChargeable.code, refused=True)
        try:
            with _translated():
                intent = self._call(
                    lambda client: client.v1.payment_intents.create(
                        params={
                            "amount": amount,
                            "currency": currency.lower(),
                            "customer": customer_id,
                            "payment_method": payment_method_id,
                            "off_session": True,
                            "confirm": True,
                            "metadata": metadata,
                        },
                        options={"idempotency_key": idempotency_key},
                    )
                )
        except stripe.CardError as error:
            code = (error.error.decline_code if error.error else None) or error.code or "card_declined"
            intent_id = error.error.payment_intent.id if error.error and error.error.payment_intent else None
            return ChargeOutcome(False, intent_id, str(code))
        except InvalidPaymentMethod as refused:
            return ChargeOutcome(False, refused.payment_intent_id, refused.stripe_code, refused=True)
        if intent.status == "succeeded":
            return ChargeOutcome(True, str(intent.id))
        error_detail = intent.last_payment_error
        reason = (error_detail.decline_code or error_detail.code) if error_detail else intent.status
        return ChargeOutcome(False, str(intent.id), str(reason))

    def refund(
        self,
        idempotency_key: str,
        payment_intent_id: str,
        amount_minor: int,
        currency: str,
        metadata: dict[str, str] | None = None,
    ) -> str:
        """A refund of part or all of a charge; Stripe's refund id. The ISO amount is sent in Stripe's units
        (`AmountNotChargeable` when Stripe has none for it). `metadata` (our refund's id) comes back in
        `charge.refunded`, so a refund whose answer was lost is recognised there."""
        amount = to_stripe(amount_minor, currency.upper(), exponent(currency.upper()))
        params: dict[str, Any] = {"payment_intent": payment_intent_id, "amount": amount}
        if metadata:
            params["metadata"] = metadata
        with _translated():
            refund = self._call(
                lambda client: client.v1.refunds.create(
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": idempotency_key},
                )
            )
        return str(refund.id)

    def transfer(self, idempotency_key: str, amount_minor: int, currency: str, destination: str) -> str:
        """A Connect transfer to a connected account; Stripe's transfer id. A refused destination (closed,
        unknown) raises `InvalidPaymentMethod`, an outage `PaymentProviderUnavailable`."""
        try:
            amount = to_stripe(amount_minor, currency.upper(), exponent(currency.upper()))
        except AmountNotChargeable as error:
            raise InvalidPaymentMethod(str(error)) from None
        with _translated():
            transfer = self._call(
                lambda client: client.v1.transfers.create(
                    params={"amount": amount, "currency": currency.lower(), "destination": destination},
                    options={"idempotency_key": idempotency_key},
                )
            )
        return str(transfer.id)


def _card_setup(intent: Any) -> CardSetup:
    metadata = intent.metadata.to_dict() if intent.metadata else {}
    method = intent.payment_method
    return CardSetup(
        id=str(intent.id),
        client_secret=str(intent.client_secret),
        status=str(intent.status),
        customer=None if intent.customer is None else str(intent.customer),
        payment_method=None if method is None else str(method if isinstance(method, str) else method.id),
        tenant_id=metadata.get("tenant_id"),
    )
