"""Licenses: issuance (tokens/s signed through OpenBao transit) and offline verification (tokens/s).

Issuance runs `LicenseSigner.sign` as the product does: one transit `sign` request per token, the key version
cached. It is measured twice: sequentially (one request at a time, so latency-bound) and with several threads,
each with its own hvac client (requests sessions are not shared across threads). Verification runs
`license_token.verify` on the issued tokens, one thread, no network: what a plugin does at start-up.

A report, not a test: it raises `Broken` only if a token does not verify, since the figures would mean nothing.

    .venv/bin/python -m bench.licenses --help
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psutil

from bench.stack import Broken, dev_stack
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from plugins_registry.errors import TokenInvalid
from plugins_registry.license_token import verify
from plugins_registry.signer import LicenseSigner

WARM_UP_TOKENS = 20


@dataclass(frozen=True)
class Rate:
    tokens: int
    seconds: float
    # CPU used meanwhile, in cores (1.0 = one core busy all along): this process (hvac and requests, or
    # verify) and the local OpenBao server (0 if it runs elsewhere).
    bench_cores: float = 0.0
    openbao_cores: float = 0.0

    @property
    def per_second(self) -> float:
        return self.tokens / self.seconds


@dataclass(frozen=True)
class LicenseResult:
    sequential: Rate  # one transit request at a time
    threaded: Rate  # `threads` threads, one hvac client each
    threads: int
    verification: Rate  # license_token.verify, one thread, offline

    def as_dict(self) -> dict[str, float]:
        return {
            "issuance_sequential_per_s": self.sequential.per_second,
            "issuance_threaded_per_s": self.threaded.per_second,
            "issuance_threads": self.threads,
            "verification_per_s": self.verification.per_second,
        }


class CpuMeter:
    """CPU seconds (user + system) of this process and of the OpenBao server listening on `bao_addr`."""

    def __init__(self, bao_addr: str) -> None:
        self.bench = psutil.Process()
        port = urlsplit(bao_addr).port
        self.openbao = [
            process
            for process in psutil.process_iter(["name"])
            if process.info["name"] == "bao" and any(_listens(c, port) for c in process.net_connections("inet"))
        ]

    def read(self) -> tuple[float, float]:
        return _seconds([self.bench]), _seconds(self.openbao)

    def rate(self, tokens: int, seconds: float, before: tuple[float, float]) -> Rate:
        bench, openbao = ((end - start) / seconds for start, end in zip(before, self.read(), strict=True))
        return Rate(tokens, seconds, bench, openbao)


def _listens(connection: Any, port: int | None) -> bool:
    return bool(connection.status == psutil.CONN_LISTEN and connection.laddr.port == port)


def _seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _report(label: str, rate: Rate) -> None:
    print(
        f"  {label:<28} {rate.per_second:>8,.0f} tokens/s in {rate.seconds:.2f} s "
        f"[cores: this process {rate.bench_cores:.2f}, OpenBao {rate.openbao_cores:.2f}]",
        flush=True,
    )


def _claims(index: int, now: int) -> dict[str, Any]:
    """A license as the registry would issue it: who, which plugin, how many seats, until when."""
    return {
        "iss": "controlplane",
        "sub": f"lic_{uuid.uuid4().hex}",
        "tenant_id": str(uuid.uuid4()),
        "plugin": "acme-reports",
        "version_range": ">=1.2.0,<2",
        "seats": 1 + index % 50,
        "entitlements": ["export.pdf", "schedules"],
        "iat": now,
        "exp": now + 365 * 86400,
    }


def _signer(env: dict[str, str]) -> LicenseSigner:
    store = SecretStore.connect(Settings.from_env({**env, "CONTROLPLANE_ENV": "development"}))
    return LicenseSigner(store.client)


def _issue(signer: LicenseSigner, claims: list[dict[str, Any]]) -> list[str]:
    return [signer.sign(one)[0] for one in claims]


def measure(env: dict[str, str], *, tokens: int = 2_000, threads: int = 8, sequential: int = 500) -> LicenseResult:
    """Issue `sequential` tokens one at a time, then `tokens` with `threads` threads; verify them all."""
    print(
        f"\n== licenses: {sequential:,} tokens signed sequentially, {tokens:,} with {threads} threads "
        f"(OpenBao transit, ed25519); every token verified offline; {os.cpu_count()} CPU cores ==",
        flush=True,
    )
    meter = CpuMeter(env["BAO_ADDR"])
    now = int(time.time())
    signers = [_signer(env) for _ in range(threads)]
    signers[0].ensure_key()
    for signer in signers:  # connections open, key version cached
        _issue(signer, [_claims(index, now) for index in range(WARM_UP_TOKENS // threads + 1)])

    claims = [_claims(index, now) for index in range(sequential)]
    cpu, started = meter.read(), time.perf_counter()
    issued = _issue(signers[0], claims)
    sequential_rate = meter.rate(sequential, time.perf_counter() - started, cpu)
    _report("issuance, sequential", sequential_rate)

    per_thread = [[_claims(index, now) for index in range(part, tokens, threads)] for part in range(threads)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        cpu, started = meter.read(), time.perf_counter()
        parts = list(pool.map(_issue, signers, per_thread))
        threaded_rate = meter.rate(tokens, time.perf_counter() - started, cpu)
    _report(f"issuance, {threads} threads", threaded_rate)

    expected = claims + list(itertools.chain.from_iterable(per_thread))
    issued += list(itertools.chain.from_iterable(parts))
    jwks = signers[0].jwks()
    cpu, started = meter.read(), time.perf_counter()
    for token, one in zip(issued, expected, strict=True):
        try:
            verified = verify(token, jwks, now=now)
        except TokenInvalid as error:
            raise Broken(f"an issued license does not verify: {error.reason}") from error
        if verified != one:
            raise Broken("an issued license verifies with other claims than it was issued with")
    verification_rate = meter.rate(len(issued), time.perf_counter() - started, cpu)
    _report("verification, offline, 1 thread", verification_rate)
    return LicenseResult(sequential_rate, threaded_rate, threads, verification_rate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.licenses", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=2_000, help="tokens signed by the threads (default 2,000)")
    parser.add_argument("--threads", type=int, default=8, help="signing threads (default 8)")
    parser.add_argument("--sequential", type=int, default=500, help="tokens signed one at a time (default 500)")
    parser.add_argument("--keep", action="store_true", help="keep the stack's temporary folder (logs, data)")
    args = parser.parse_args(argv)
    try:
        with dev_stack(keep=args.keep) as stack:
            result = measure(stack.env, tokens=args.tokens, threads=args.threads, sequential=args.sequential)
    except Broken as error:
        print(f"\nBROKEN: {error}", file=sys.stderr)
        return 1
    print(
        f"\nlicenses   issuance {result.sequential.per_second:,.0f} tokens/s sequential, "
        f"{result.threaded.per_second:,.0f} tokens/s with {result.threads} threads (OpenBao transit); "
        f"verification {result.verification.per_second:,.0f} tokens/s offline"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
