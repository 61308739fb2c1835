"""What services hand back: frozen dataclasses named for what they are (`InvoiceView`), and pages of them.

Services never return bare dicts; controllers turn views into the API's `…Read` structs with
`controlplane.core.web.to_struct`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated list, and the cursor of the next page (None on the last)."""

    items: list[T]
    next_cursor: str | None


_field_names_of: dict[type[Any], tuple[str, ...]] = {}


def _field_names(view: type[Any]) -> tuple[str, ...]:
    # dataclasses.fields builds its answer on every call: a list page would ask once per row.
    names = _field_names_of.get(view)
    if names is None:
        names = _field_names_of[view] = tuple(field.name for field in dataclasses.fields(view))
    return names


def view_of(view: type[T], row: Mapping[str, Any], **overrides: Any) -> T:
    """The view of a row: each of the view's fields from the column of its name (other columns are left out),
    or from `overrides`."""
    if overrides:
        values = {name: row[name] for name in _field_names(view) if name not in overrides}
        return view(**values, **overrides)
    return view(**{name: row[name] for name in _field_names(view)})
