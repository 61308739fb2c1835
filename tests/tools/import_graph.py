"""The package-level import graph: `python -m tests.tools.import_graph [ROOT]` (ROOT: a checkout, default here).

One line per edge between packages (`controlplane.core`, `controlplane.ops`, the composition root
`controlplane`, each domain and its `api`, `workers`), with how many modules import along it, and how many of
those imports are placed inside functions. Edges that point up a floor (ground -> anything, a domain -> the
composition root or workers) are marked `UP`; edges whose reverse also exists (a cycle of two packages) `CYCLE`."""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

PACKAGES = ("controlplane", "tenants", "billing", "plugins_registry", "workers")
DOMAINS = ("tenants", "billing", "plugins_registry")


def unit_of(module: str, root: Path) -> str:
    parts = module.split(".")
    if parts[0] == "controlplane":
        if len(parts) > 1 and (root / "controlplane" / parts[1]).is_dir() and parts[1] in ("core", "ops", "devstack"):
            return f"controlplane.{parts[1]}"
        return "controlplane"
    if parts[0] in DOMAINS and len(parts) > 1 and parts[1] == "api":
        return f"{parts[0]}.api"
    return parts[0]


def floor_of(unit: str) -> int:
    if unit == "controlplane.core":
        return 0
    if unit.split(".")[0] in DOMAINS:
        return 1
    return 2  # the composition root, its operations and dev stack, workers


def edges(root: Path) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    top: Counter[tuple[str, str]] = Counter()
    inner: Counter[tuple[str, str]] = Counter()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "piccolo_migrations" in path.parts:
                continue
            module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            source = unit_of(module, root)
            seen: dict[str, bool] = {}
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                else:
                    continue
                for name in names:
                    if name.split(".")[0] in PACKAGES:
                        target = unit_of(name, root)
                        if target != source:
                            seen[target] = seen.get(target, False) or node.col_offset > 0
            for target, in_function in seen.items():
                (inner if in_function else top)[(source, target)] += 1
    return top, inner


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    top, inner = edges(root)
    every = set(top) | set(inner)
    ups = cycles = 0
    for source, target in sorted(every):
        up = floor_of(target) > floor_of(source)
        cycle = (target, source) in every
        ups, cycles = ups + up, cycles + cycle
        count, hidden = top[(source, target)] + inner[(source, target)], inner[(source, target)]
        note = f" ({hidden} inside functions)" if hidden else ""
        mark = "CYCLE" if cycle else "UP" if up else ""
        print(f"{mark:5} {source:24} -> {target:24} {count:3} modules{note}")
    print(
        f"{ups} edges point up a floor, {cycles} edges are in a cycle, {sum(inner.values())} module edges are imports"
    )
    print("inside functions")


if __name__ == "__main__":
    main()
