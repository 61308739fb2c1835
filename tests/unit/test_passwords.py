"""Password hashing: a verification costs ~0.2 s of CPU by design, and the process keeps serving meanwhile, its
other blocking calls too."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher

from controlplane.core.auth.passwords import hash_password, verify_password


async def test_a_verification_at_full_cost_leaves_the_event_loop_serving() -> None:
    password = "correct horse battery staple"
    full_cost = PasswordHasher().hash(password)  # the product's parameters (the suite hashes at the cheapest)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        assert await verify_password(full_cost, password)
        assert not await verify_password(full_cost, password + "!")
    finally:
        task.cancel()
    assert ticks >= 10, ticks  # two ~0.2 s verifications: the loop went on ticking every 5 ms


async def test_a_hash_verifies_its_own_password_only_and_an_unknown_user_never() -> None:
    stored = await hash_password("correct horse battery staple")
    assert await verify_password(stored, "correct horse battery staple")
    assert not await verify_password(stored, "correct horse battery stapler")
    assert not await verify_password(None, "not-a-real-password")  # the dummy hash's own password
    assert not await verify_password("not a hash", "anything")


async def test_a_flood_of_verifications_leaves_the_other_blocking_calls_their_threads() -> None:
    password = "correct horse battery staple"
    full_cost = PasswordHasher().hash(password)
    loop = asyncio.get_running_loop()
    small = ThreadPoolExecutor(max_workers=2)
    loop.set_default_executor(small)  # where OpenBao, Stripe and mail calls run; the suite's loop gets it back
    finished: dict[str, float] = {}

    async def verification(n: int) -> None:
        await verify_password(full_cost, password)
        finished[f"verification {n}"] = time.monotonic()

    async def other_blocking_call() -> None:
        await asyncio.sleep(0.01)  # the flood has begun
        await asyncio.to_thread(lambda: None)
        finished["other"] = time.monotonic()

    try:
        await asyncio.gather(*(verification(n) for n in range(4)), other_blocking_call())
    finally:
        loop.set_default_executor(ThreadPoolExecutor())
        small.shutdown(wait=False)
    first_verification = min(at for name, at in finished.items() if name != "other")
    assert finished["other"] < first_verification  # it did not wait for a verification to free a thread
