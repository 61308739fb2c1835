"""A plugin's price and entitlements, checked in one place, and the billing charge a paid plugin adds. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from billing.errors import BillingInvalid
from billing.money import decimal_of, exponent
from plugins_registry.errors import InvalidPricing, InvalidSeats

PricingModel = Literal["free", "flat", "per_seat", "metered"]
MODELS = ("free", "flat", "per_seat", "metered")
MAX_TRIAL_DAYS = 365
MAX_FEATURES = 100
MAX_LIMITS = 50
MAX_SEATS = 100_000
_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Pricing:
    model: PricingModel
    amount_minor: Decimal = Decimal(0)  # flat: per period; per_seat: per seat and period; metered: per unit
    currency: str | None = None
    metric_code: str | None = None
    trial_days: int = 0

    @property
    def is_paid(self) -> bool:
        return self.model != "free"

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "amount_minor": format(self.amount_minor.normalize(), "f") if self.is_paid else "0",
            "currency": self.currency,
            "metric_code": self.metric_code,
            "trial_days": self.trial_days,
        }

    def billing_charge(self, plugin_name: str) -> dict[str, Any]:
        """The charge in the billing catalogue's JSON form that this plugin adds to a subscription."""
        if self.model == "flat":
            return {"type": "flat", "name": plugin_name, "amount_minor": str(self.amount_minor)}
        if self.model == "per_seat":
            return {"type": "per_seat", "name": plugin_name, "unit_amount_minor": str(self.amount_minor)}
        if self.model == "metered":
            return {
                "type": "metered",
                "model": "per_unit",
                "name": plugin_name,
                "metric_code": self.metric_code,
                "unit_amount_minor": str(self.amount_minor),
            }
        raise InvalidPricing("a free plugin adds no charge")


@dataclass(frozen=True, slots=True)
class Entitlements:
    features: tuple[str, ...] = ()
    limits: dict[str, int] = field(default_factory=dict)
    seats: int = 1  # the seat limit of a license, unless the plugin is priced per seat

    def as_json(self) -> dict[str, Any]:
        return {"features": list(self.features), "limits": dict(self.limits), "seats": self.seats}


def _whole(value: Any, what: str, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidPricing(f"{what} must be a whole number from {minimum} to {maximum}")
    return value


def parse_pricing(raw: dict[str, Any]) -> Pricing:
    model = raw.get("model")
    if model not in MODELS:
        raise InvalidPricing(f"pricing.model must be one of {', '.join(MODELS)}")
    trial_days = _whole(raw.get("trial_days", 0), "pricing.trial_days", 0, MAX_TRIAL_DAYS)
    if model == "free":
        if raw.get("amount_minor") not in (None, 0, "0") or raw.get("metric_code") is not None:
            raise InvalidPricing("a free plugin has no amount or metric")
        if trial_days:
            raise InvalidPricing("a free plugin has no trial")
        return Pricing("free")
    currency = raw.get("currency")
    try:
        exponent(currency if isinstance(currency, str) else "")
        amount = decimal_of(raw.get("amount_minor", ""), what="pricing.amount_minor")
    except BillingInvalid as error:
        raise InvalidPricing(str(error.detail)) from None
    if amount <= 0:
        raise InvalidPricing("a paid plugin's amount_minor is above zero")
    metric_code = raw.get("metric_code")
    if model == "metered":
        if not isinstance(metric_code, str) or not metric_code:
            raise InvalidPricing("a metered plugin names the metric_code its usage is reported with")
    else:
        if metric_code is not None:
            raise InvalidPricing("only a metered plugin names a metric_code")
        if amount != amount.to_integral_value():
            raise InvalidPricing("a flat or per-seat price is a whole number of minor units")
    return Pricing(model, amount, currency, metric_code, trial_days)


def parse_entitlements(raw: dict[str, Any] | None) -> Entitlements:
    raw = raw or {}
    features = raw.get("features", [])
    if not isinstance(features, list) or len(features) > MAX_FEATURES:
        raise InvalidPricing(f"entitlements.features is a list of at most {MAX_FEATURES} names")
    for name in features:
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidPricing(f"feature {name!r} must be a lower-case name of at most 64 characters")
    limits = raw.get("limits", {})
    if not isinstance(limits, dict) or len(limits) > MAX_LIMITS:
        raise InvalidPricing(f"entitlements.limits is an object of at most {MAX_LIMITS} limits")
    for name, value in limits.items():
        if not _NAME.match(name):
            raise InvalidPricing(f"limit {name!r} must be a lower-case name of at most 64 characters")
        _whole(value, f"entitlements.limits.{name}", 0, 2**53)
    seats = _whole(raw.get("seats", 1), "entitlements.seats", 1, MAX_SEATS)
    return Entitlements(tuple(dict.fromkeys(features)), dict(limits), seats)


def seats_for_install(pricing: Pricing, entitlements: Entitlements, requested: int | None) -> int:
    """Per-seat plugins sell the seats asked for; others come with the plugin's seat limit, at most."""
    if requested is None:
        return 1 if pricing.model == "per_seat" else entitlements.seats
    maximum = MAX_SEATS if pricing.model == "per_seat" else entitlements.seats
    if not 1 <= requested <= maximum:
        raise InvalidSeats(f"seats must be from 1 to {maximum} for this plugin")
    return requested
