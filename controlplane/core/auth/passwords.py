"""Password hashing with argon2id, off the event loop.

A hash or a verification costs ~0.2 s of CPU by design; argon2's C code releases the GIL, so run in a thread it
leaves the process serving every other request meanwhile (on the event loop it would stall them all). Its
threads are its own, as many as the CPUs: a flood of sign-ins queues there, and never takes the threads the
process's other blocking calls (OpenBao, Stripe, mail) run in.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import CHEAPEST

MIN_PASSWORD_LENGTH = 12
_THREADS = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="argon2")

_hasher = PasswordHasher()  # argon2-cffi's defaults (RFC 9106's low-memory profile)
# Verifying against this when the user does not exist keeps the response time the same.
_dummy_hash = _hasher.hash("not-a-real-password")


def use_cheapest_cost_for_tests() -> None:
    """For a test suite, which creates thousands of people: argon2id at its cheapest parameters. A hash made so
    carries its parameters and verifies anywhere; nothing in the product calls this."""
    global _hasher, _dummy_hash
    _hasher = PasswordHasher.from_parameters(CHEAPEST)
    _dummy_hash = _hasher.hash("not-a-real-password")


def _verify(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy_hash, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_THREADS, _hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    return await asyncio.get_running_loop().run_in_executor(_THREADS, _verify, password_hash, password)
