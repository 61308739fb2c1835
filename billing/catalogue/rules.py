"""Plans and their charges as frozen values, parsed and checked from their JSON form. Pure.

A charge's prices are minor units and may be fractional (`"0.25"`), so they are `Decimal`s and travel
as decimal strings. Parsing is the one place a charge is validated; what it returns is always billable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from billing import limits
from billing.errors import AmountNotChargeable, InvalidCharge, PercentageNeedsSum
from billing.money import decimal_of, exponent
from billing.payments.stripe_amounts import chargeable_step

ChargeKind = Literal["flat", "per_seat", "metered"]
Model = Literal["per_unit", "graduated", "volume", "package", "percentage"]
ProrationMode = Literal["immediate", "next_period"]
AGGREGATIONS = ("count", "sum", "max", "unique_count", "latest")
MAX_CHARGES = 50
MAX_TIERS = 20
MAX_RATE_PERCENT = Decimal(100)
# The largest value of each numeric field of a charge (see billing.limits for why).
FIELD_LIMITS: dict[str, int] = {
    "amount_minor": limits.MAX_FLAT_MINOR,
    "flat_amount_minor": limits.MAX_FLAT_MINOR,
    "min_amount_minor": limits.MAX_FLAT_MINOR,
    "unit_amount_minor": limits.MAX_UNIT_PRICE_MINOR,
    "up_to": limits.MAX_UNITS,
    "free_units": limits.MAX_UNITS,
    "fixed_amount_minor": limits.MAX_FLAT_MINOR,
    "per_event_min_minor": limits.MAX_FLAT_MINOR,
    "per_event_max_minor": limits.MAX_FLAT_MINOR,
    "rate": int(MAX_RATE_PERCENT),
}


@dataclass(frozen=True, slots=True)
class Tier:
    up_to: Decimal | None  # inclusive upper bound of units; None for the last tier
    unit_amount: Decimal
    flat_amount: Decimal


@dataclass(frozen=True, slots=True)
class Charge:
    kind: ChargeKind
    name: str
    amount: Decimal = Decimal(0)  # flat: per period; package: per package
    unit_amount: Decimal = Decimal(0)  # per_seat and per_unit
    metric_code: str | None = None
    model: Model | None = None
    tiers: tuple[Tier, ...] = ()
    package_size: int = 1
    free_units: Decimal = Decimal(0)
    min_amount: Decimal | None = None
    # percentage: each event pays value x rate / 100 + fixed_amount, clamped to [per_event_min, per_event_max];
    # the first `free_events` events of the window pay nothing (Lago's percentage charge)
    rate: Decimal = Decimal(0)
    fixed_amount: Decimal = Decimal(0)
    free_events: int = 0
    per_event_min: Decimal | None = None
    per_event_max: Decimal | None = None

    @property
    def in_advance(self) -> bool:
        return self.kind != "metered"


@dataclass(frozen=True, slots=True)
class Plan:
    id: Any
    code: str
    version: int
    name: str
    currency: str
    interval: Literal["month", "year"]
    trial_days: int
    charges: tuple[Charge, ...]
    upgrade: ProrationMode = "immediate"
    downgrade: ProrationMode = "next_period"
    metric_codes: frozenset[str] = field(default=frozenset())

    def recurring_amount(self, seats: int) -> Decimal:
        """The advance-billed price of one whole period for `seats` seats."""
        amount = Decimal(0)
        for charge in self.charges:
            if charge.kind == "flat":
                amount += charge.amount
            elif charge.kind == "per_seat":
                amount += charge.unit_amount * seats
        return amount

    def monthly_amount(self, seats: int) -> Decimal:
        """The recurring price normalised to a month: how upgrades are told from downgrades."""
        amount = self.recurring_amount(seats)
        return amount / 12 if self.interval == "year" else amount


def _amount(raw: dict[str, Any], key: str, where: str, *, required: bool = True) -> Decimal:
    if key not in raw or raw[key] is None:
        if required:
            raise InvalidCharge(f"{where}: {key} is required")
        return Decimal(0)
    try:
        value = decimal_of(raw[key], what=f"{where}.{key}")
    except Exception as error:
        raise InvalidCharge(str(error)) from None
    if value < 0:
        raise InvalidCharge(f"{where}: {key} must not be negative")
    if value.as_tuple().exponent < -limits.MAX_PLACES or value > FIELD_LIMITS[key]:  # type: ignore[operator]
        raise InvalidCharge(
            f"{where}: {key} is out of range (at most {FIELD_LIMITS[key]}, {limits.MAX_PLACES} decimal places)"
        )
    return value


def _whole(raw: dict[str, Any], key: str, where: str, *, default: int | None = None, minimum: int = 0) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or value > limits.MAX_PACKAGE_SIZE:
        raise InvalidCharge(f"{where}: {key} must be a whole number of at least {minimum}")
    return value


def _tiers(raw: Any, where: str) -> tuple[Tier, ...]:
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_TIERS:
        raise InvalidCharge(f"{where}: tiers must be a list of 1 to {MAX_TIERS} tiers")
    tiers = []
    previous = Decimal(0)
    for index, item in enumerate(raw):
        here = f"{where}.tiers[{index}]"
        if not isinstance(item, dict) or set(item) - {"up_to", "unit_amount_minor", "flat_amount_minor"}:
            raise InvalidCharge(f"{here}: a tier has up_to, unit_amount_minor and flat_amount_minor")
        last = index == len(raw) - 1
        up_to = None if item.get("up_to") is None else _amount(item, "up_to", here)
        if last and up_to is not None:
            raise InvalidCharge(f"{here}: the last tier's up_to must be null")
        if not last and (up_to is None or up_to <= previous):
            raise InvalidCharge(f"{here}: up_to must be set and greater than the previous tier's")
        tiers.append(
            Tier(
                up_to=up_to,
                unit_amount=_amount(item, "unit_amount_minor", here, required=False),
                flat_amount=_amount(item, "flat_amount_minor", here, required=False),
            )
        )
        previous = up_to or previous
    return tuple(tiers)


CHARGE_KEYS: dict[str, set[str]] = {
    "flat": {"type", "name", "amount_minor", "min_amount_minor"},
    "per_seat": {"type", "name", "unit_amount_minor", "min_amount_minor"},
    "per_unit": {"type", "name", "metric_code", "model", "unit_amount_minor", "min_amount_minor"},
    "graduated": {"type", "name", "metric_code", "model", "tiers", "min_amount_minor"},
    "volume": {"type", "name", "metric_code", "model", "tiers", "min_amount_minor"},
    "package": {
        "type",
        "name",
        "metric_code",
        "model",
        "package_size",
        "amount_minor",
        "free_units",
        "min_amount_minor",
    },
    "percentage": {
        "type",
        "name",
        "metric_code",
        "model",
        "rate",
        "fixed_amount_minor",
        "free_events",
        "per_event_min_minor",
        "per_event_max_minor",
        "min_amount_minor",
    },
}
METERED_MODELS = ("per_unit", "graduated", "volume", "package", "percentage")


def parse_charge(raw: Any, index: int) -> Charge:
    where = f"charges[{index}]"
    if not isinstance(raw, dict):
        raise InvalidCharge(f"{where}: a charge is an object")
    kind = raw.get("type")
    if kind not in ("flat", "per_seat", "metered"):
        raise InvalidCharge(f"{where}: type must be flat, per_seat or metered")
    model = raw.get("model") if kind == "metered" else None
    if kind == "metered" and model not in METERED_MODELS:
        raise InvalidCharge(f"{where}: model must be per_unit, graduated, volume, package or percentage")
    allowed = CHARGE_KEYS[model or kind]
    unknown = set(raw) - allowed
    if unknown:
        raise InvalidCharge(f"{where}: unexpected field(s) {', '.join(sorted(unknown))} for this charge")
    name = raw.get("name") or (raw.get("metric_code") if kind == "metered" else kind.replace("_", " "))
    if not isinstance(name, str) or not 1 <= len(name) <= 200 or any(ord(c) < 32 for c in name):
        raise InvalidCharge(f"{where}: name must be 1 to 200 printable characters")
    min_amount = _amount(raw, "min_amount_minor", where) if raw.get("min_amount_minor") is not None else None
    if kind == "flat":
        return Charge(kind, name, amount=_amount(raw, "amount_minor", where), min_amount=min_amount)
    if kind == "per_seat":
        return Charge(kind, name, unit_amount=_amount(raw, "unit_amount_minor", where), min_amount=min_amount)
    metric_code = raw.get("metric_code")
    if not isinstance(metric_code, str) or not metric_code:
        raise InvalidCharge(f"{where}: a metered charge names its metric_code")
    common: dict[str, Any] = {"metric_code": metric_code, "model": model, "min_amount": min_amount}
    if model == "per_unit":
        return Charge(kind, name, unit_amount=_amount(raw, "unit_amount_minor", where), **common)
    if model in ("graduated", "volume"):
        return Charge(kind, name, tiers=_tiers(raw.get("tiers"), where), **common)
    if model == "percentage":
        return _percentage(raw, where, name, common)
    return Charge(
        kind,
        name,
        amount=_amount(raw, "amount_minor", where),
        package_size=_whole(raw, "package_size", where, minimum=1),
        free_units=_amount(raw, "free_units", where, required=False),
        **common,
    )


def _percentage(raw: dict[str, Any], where: str, name: str, common: dict[str, Any]) -> Charge:
    rate = _amount(raw, "rate", where)
    if not 0 < rate <= MAX_RATE_PERCENT:
        raise InvalidCharge(f"{where}: rate is a percent greater than 0 and at most {MAX_RATE_PERCENT}")
    optional = {key: raw.get(key) is not None for key in ("per_event_min_minor", "per_event_max_minor")}
    per_event_min = _amount(raw, "per_event_min_minor", where) if optional["per_event_min_minor"] else None
    per_event_max = _amount(raw, "per_event_max_minor", where) if optional["per_event_max_minor"] else None
    if per_event_min is not None and per_event_max is not None and per_event_min > per_event_max:
        raise InvalidCharge(f"{where}: per_event_min_minor must not be above per_event_max_minor")
    return Charge(
        "metered",
        name,
        rate=rate,
        fixed_amount=_amount(raw, "fixed_amount_minor", where, required=False),
        free_events=_whole(raw, "free_events", where, default=0),
        per_event_min=per_event_min,
        per_event_max=per_event_max,
        **common,
    )


def parse_charges(raw: Any) -> tuple[Charge, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_CHARGES:
        raise InvalidCharge(f"charges must be a list of at most {MAX_CHARGES}")
    charges = tuple(parse_charge(item, index) for index, item in enumerate(raw))
    metered = [c.metric_code for c in charges if c.metric_code]
    if len(metered) != len(set(metered)):
        raise InvalidCharge("a metric may be charged only once per plan")
    return charges


def check_percentage_metrics(charges: Sequence[Charge], metrics: dict[str, dict[str, Any]]) -> None:
    """A percentage charge takes its cut of each event's value: its metric must `sum` them (a count, a maximum
    or a latest value has no per-event amount to take a percentage of)."""
    for index, charge in enumerate(charges):
        metric = metrics.get(charge.metric_code or "")
        if charge.model == "percentage" and metric is not None and metric["aggregation"] != "sum":
            raise PercentageNeedsSum(
                f"charges[{index}]: a percentage charge needs a sum metric; {charge.metric_code} aggregates by "
                f"{metric['aggregation']}"
            )


def check_chargeable(charges: Sequence[Charge], currency: str) -> None:
    """Every fixed price of the plan (flat, per seat, per package, a tier's flat fee, a minimum) is an amount
    Stripe can charge in `currency` (whole forints, fils ending in 0: `billing.stripe_amounts`).
    Metered unit prices are left alone: what they add up to is only known on the invoice."""
    step = chargeable_step(currency, exponent(currency))
    if step == 1:
        return
    for index, charge in enumerate(charges):
        fixed = [charge.amount, charge.unit_amount if charge.kind == "per_seat" else Decimal(0)]
        fixed += [tier.flat_amount for tier in charge.tiers]
        fixed += [charge.min_amount] if charge.min_amount is not None else []
        for amount in fixed:
            if amount % step:
                raise AmountNotChargeable(
                    f"charges[{index}]: Stripe charges {currency} only in multiples of {step} minor units, "
                    f"not {_text(amount)}",
                    step_minor=step,
                )


def _text(value: Decimal) -> str:
    # Plain notation, no exponent, trailing zeros removed ("0.25", "100").
    return format(value.normalize(), "f")


def charge_to_json(charge: Charge) -> dict[str, Any]:
    """The stored and served form of a charge; `parse_charge` reads it back unchanged."""
    out: dict[str, Any] = {"type": charge.kind, "name": charge.name}
    if charge.kind == "flat":
        out["amount_minor"] = _text(charge.amount)
    elif charge.kind == "per_seat":
        out["unit_amount_minor"] = _text(charge.unit_amount)
    else:
        out["metric_code"] = charge.metric_code
        out["model"] = charge.model
        if charge.model == "per_unit":
            out["unit_amount_minor"] = _text(charge.unit_amount)
        elif charge.model in ("graduated", "volume"):
            out["tiers"] = [
                {
                    "up_to": None if tier.up_to is None else _text(tier.up_to),
                    "unit_amount_minor": _text(tier.unit_amount),
                    "flat_amount_minor": _text(tier.flat_amount),
                }
                for tier in charge.tiers
            ]
        elif charge.model == "percentage":
            out["rate"] = _text(charge.rate)
            out["fixed_amount_minor"] = _text(charge.fixed_amount)
            out["free_events"] = charge.free_events
            if charge.per_event_min is not None:
                out["per_event_min_minor"] = _text(charge.per_event_min)
            if charge.per_event_max is not None:
                out["per_event_max_minor"] = _text(charge.per_event_max)
        else:
            out["package_size"] = charge.package_size
            out["amount_minor"] = _text(charge.amount)
            out["free_units"] = _text(charge.free_units)
    if charge.min_amount is not None:
        out["min_amount_minor"] = _text(charge.min_amount)
    return out


def plan_from_row(row: dict[str, Any], charges_json: Sequence[dict[str, Any]]) -> Plan:
    exponent(row["currency"])
    charges = parse_charges(list(charges_json))
    return Plan(
        id=row["id"],
        code=row["code"],
        version=row["version"],
        name=row["name"],
        currency=row["currency"],
        interval=row["interval"],
        trial_days=row["trial_days"],
        charges=charges,
        upgrade=row["proration_upgrade"],
        downgrade=row["proration_downgrade"],
        metric_codes=frozenset(c.metric_code for c in charges if c.metric_code),
    )
