"""Validate the OpenTofu deployment offline: parse, check the structure, run checkov, format (and validate).

    python -m deploy.opentofu.validate --checkov .tools/checkov/bin/checkov [--root deploy/opentofu]

1. Every ``*.tf`` file under the root is parsed with python-hcl2.
2. A few structural rules over the parsed files: each module has main/variables/outputs/versions.tf; every
   versions.tf pins ``required_version`` and each provider's version; every variable has a description and a
   type; env ``module`` blocks point at an existing ``../../modules/<name>``; a variable whose name looks
   secret has no default and is ``sensitive``; each env keeps its state in an encrypted S3 backend.
3. checkov (terraform framework, no network): any failed check fails; every skip must carry a reason
   (``# checkov:skip=CKV_X: reason`` next to the resource).
4. ``tofu fmt -check`` and, per env, ``tofu init -backend=false`` + ``tofu validate`` if tofu is on PATH
   (init needs the provider registry: offline it is reported as not run). Without tofu, ``terraform fmt``.

Exit status 0 only when every stage that ran passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parents[1]
MODULE_FILES = ("main.tf", "variables.tf", "outputs.tf", "versions.tf")
SECRET_WORDS = re.compile(r"password|token|secret")
# Names of secrets, ARNs and key ids are references to a secret, not secret values.
REFERENCE_SUFFIXES = ("_name", "_arn", "_key_id")
HCL_OPTIONS = hcl2.SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)
OFFLINE_HINTS = ("registry.", "could not connect", "Failed to query available provider", "Failed to install provider")

Parsed = dict[Path, dict[str, Any]]


def parse_all(root: Path) -> tuple[Parsed, list[str]]:
    """Parse every .tf file under root; return the parsed files and one problem per file that fails."""
    parsed: Parsed = {}
    problems: list[str] = []
    for path in sorted(root.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        try:
            with path.open(encoding="utf-8") as handle:
                parsed[path] = hcl2.load(handle, serialization_options=HCL_OPTIONS)
        except Exception as exc:  # lark raises many kinds of error: each one is a parse failure to report
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            problems.append(f"{path.relative_to(root)}: does not parse: {first_line}")
    return parsed, problems


def _blocks(data: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    """The labelled blocks of one kind in a parsed file, as (label, body) pairs."""
    return [(label, body) for block in data.get(kind, []) for label, body in block.items()]


def check_structure(root: Path, parsed: Parsed) -> tuple[list[str], int]:
    """Apply the structural rules; return the problems and the number of variables checked."""
    problems: list[str] = []
    modules = root / "modules"
    for module in sorted(p for p in modules.iterdir() if p.is_dir()) if modules.is_dir() else []:
        missing = [name for name in MODULE_FILES if not (module / name).is_file()]
        if missing:
            problems.append(f"modules/{module.name}: missing {', '.join(missing)}")

    variables = 0
    for path, data in parsed.items():
        where = path.relative_to(root)
        for terraform in data.get("terraform", []):
            if path.name == "versions.tf" and not terraform.get("required_version"):
                problems.append(f"{where}: no required_version")
            for providers in terraform.get("required_providers", []):
                unpinned = [name for name, spec in providers.items() if not spec.get("version")]
                problems += [f"{where}: provider {name} has no version constraint" for name in unpinned]
            if path.parent.parent.name == "envs" and path.name == "versions.tf":
                backends = dict(_blocks(terraform, "backend"))
                if backends.get("s3", {}).get("encrypt") is not True:
                    problems.append(f"{where}: state must use the s3 backend with encrypt = true")
        for name, body in _blocks(data, "variable"):
            variables += 1
            problems += [f"{where}: variable {name} has no {key}" for key in ("description", "type") if key not in body]
            if SECRET_WORDS.search(name) and not name.endswith(REFERENCE_SUFFIXES):
                if "default" in body:
                    problems.append(f"{where}: variable {name} looks secret and must not have a default")
                if body.get("sensitive") is not True:
                    problems.append(f"{where}: variable {name} looks secret and must be sensitive = true")
        if path.parent.parent.name == "envs":
            for name, body in _blocks(data, "module"):
                source = str(body.get("source", ""))
                target = (path.parent / source).resolve()
                if not re.fullmatch(r"\.\./\.\./modules/[a-z0-9_-]+", source) or not target.is_dir():
                    problems.append(f"{where}: module {name} source {source!r} is not an existing ../../modules/<name>")
    return problems, variables


def _run(
    command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)  # noqa: S603


def _tail(result: subprocess.CompletedProcess[str], lines: int = 8) -> str:
    text = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
    return "\n".join(text[-lines:])


def run_checkov(checkov: str, root: Path) -> tuple[dict[str, int], list[str], list[str]]:
    """Run checkov offline over root; return the counts, the problems (failed or unexplained skips), the skips."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    executable = str(Path(checkov).resolve()) if os.sep in checkov else shutil.which(checkov)
    if not executable or not Path(executable).is_file():
        return counts, [f"checkov not found at {checkov} (run `make install`)"], []
    # No platform: no API key, no download of policy mappings, no PyPI version check.
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"}
    env.pop("BC_API_KEY", None)
    result = _run(
        [executable, "-d", str(root), "--framework", "terraform", "--compact", "--skip-download", "-o", "json"],
        cwd=root,
        env=env,
    )
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError:
        return counts, [f"checkov did not produce JSON (exit {result.returncode}):\n{_tail(result)}"], []

    problems: list[str] = []
    skips: set[str] = set()
    # One report per framework (a list when several); an empty scan is a bare summary.
    for report in data if isinstance(data, list) else [data]:
        summary = report.get("summary", report)
        for key in counts:
            counts[key] += int(summary.get(key, 0))
        problems += [f"checkov could not parse {error}" for error in summary.get("parsing_errors", []) or []]
        results = report.get("results", {})
        for check in results.get("failed_checks", []):
            lines = "-".join(str(n) for n in check.get("file_line_range", []))
            problems.append(
                f"checkov {check['check_id']} failed: {check['file_path'].lstrip('/')}:{lines} {check['resource']}"
                f" ({check['check_name']})"
            )
        for check in results.get("skipped_checks", []):
            reason = (check.get("check_result", {}).get("suppress_comment") or "").strip()
            if not reason or reason == "No comment provided":
                problems.append(f"checkov {check['check_id']} skipped without a reason in {check['file_path']}")
            # A module used by both envs is reported once per env: keep each skip once.
            skips.add(f"skipped {check['check_id']} on {check['resource']}: {reason or 'NO REASON'}")
    return counts, problems, sorted(skips)


def run_tofu(root: Path) -> tuple[list[str], list[str]]:
    """fmt (and validate, with tofu) when a binary is on PATH; return notes and problems."""
    tofu, terraform = shutil.which("tofu"), shutil.which("terraform")
    binary = tofu or terraform
    if binary is None:
        return ["fmt/validate: not run (neither tofu nor terraform on PATH)"], []
    name = Path(binary).name
    fmt = _run([binary, "fmt", "-check", "-recursive", "-list=true", "-no-color"], cwd=root)
    problems = [f"{name} fmt: {file} is not formatted" for file in fmt.stdout.split()]
    if fmt.returncode != 0 and not problems:
        problems.append(f"{name} fmt failed: {_tail(fmt)}")
    notes = [f"fmt: {name} fmt -check: {'ok' if fmt.returncode == 0 else 'FAILED'}"]
    if tofu is None:
        return [*notes, "validate: not run (tofu not on PATH; terraform is used for fmt only)"], problems

    # init writes .terraform and a lock file: work on a copy (with the sibling prometheus/grafana files).
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / root.parent.name
        shutil.copytree(root.parent, copy, ignore=shutil.ignore_patterns(".terraform*", "__pycache__"))
        for env_dir in sorted(p for p in (copy / root.name / "envs").iterdir() if p.is_dir()):
            init = _run([tofu, "init", "-backend=false", "-input=false", "-no-color"], cwd=env_dir)
            if init.returncode != 0 and any(hint in init.stdout + init.stderr for hint in OFFLINE_HINTS):
                notes.append(f"validate envs/{env_dir.name}: not run (providers cannot be downloaded offline)")
                continue
            check = init if init.returncode != 0 else _run([tofu, "validate", "-no-color"], cwd=env_dir)
            notes.append(f"validate envs/{env_dir.name}: {'ok' if check.returncode == 0 else 'FAILED'}")
            if check.returncode != 0:
                problems.append(f"tofu {check.args[1]} envs/{env_dir.name}:\n{_tail(check)}")
    return notes, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the OpenTofu tree (default: this folder)")
    parser.add_argument("--checkov", default=str(REPO / ".tools/checkov/bin/checkov"), help="checkov executable")
    parser.add_argument("--skip-checkov", action="store_true", help="parse and check the structure only")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()

    parsed, problems = parse_all(root)
    print(f"parse: {len(parsed)} files parsed, {len(problems)} failed")
    structure, variables = check_structure(root, parsed)
    problems += structure
    print(f"structure: {variables} variables checked, {len(structure)} problems")

    if args.skip_checkov:
        print("checkov: not run (--skip-checkov)")
    else:
        counts, found, skips = run_checkov(args.checkov, root)
        problems += found
        print(f"checkov: passed={counts['passed']} failed={counts['failed']} skipped={counts['skipped']}")
        for skip in skips:
            print(f"  {skip}")

    notes, found = run_tofu(root)
    problems += found
    print("\n".join(notes))

    for problem in problems:
        print(f"  ✗ {problem}")
    print(f"FAILED: {len(problems)} problem(s)" if problems else "OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
