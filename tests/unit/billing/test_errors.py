"""The billing domain's error tree lives in one module, `billing.errors`, which stays pure."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import billing
from billing import errors
from billing.usage.rules import MAX_BATCH
from controlplane.core.errors import DomainError


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_billing_error_is_defined_in_billing_errors() -> None:
    for module in pkgutil.walk_packages(billing.__path__, "billing."):
        if ".piccolo_migrations" not in module.name:
            importlib.import_module(module.name)
    elsewhere = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _subclasses(DomainError) | _subclasses(errors.InvalidBatch)
        if cls.__module__.startswith("billing.") and cls.__module__ != "billing.errors"
    )
    assert elsewhere == []


def test_billing_errors_imports_only_the_ground_errors_and_the_standard_library() -> None:
    tree = ast.parse(Path(errors.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    outside = {name for name in imported if name.split(".")[0] not in sys.stdlib_module_names}
    assert outside <= {"controlplane.core.errors"}


def test_the_batch_limit_in_the_title_is_the_one_enforced() -> None:
    assert errors.BatchTooLarge.title == f"A usage batch holds at most {MAX_BATCH} events"
