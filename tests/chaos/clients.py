"""Residents as a client would behave: one Idempotency-Key per resident, reused on every retry
(connection refused or reset, timeout, 503) until a receipt comes back."""

from __future__ import annotations

import asyncio
import collections
import uuid

import httpx

from tests.intake.helpers import application_body


async def apply(
    client: httpx.AsyncClient,
    letter,
    *,
    deadline_s: float = 90,
    key: str | None = None,
    seen: collections.Counter | None = None,
) -> str:
    """`seen`, if given, counts what the client met on the way: status codes and "transport" errors."""
    key = key or uuid.uuid4().hex
    body = application_body(letter)
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        try:
            r = await client.post("/api/v1/applications", json=body, headers={"Idempotency-Key": key})
            if seen is not None:
                seen[r.status_code] += 1
            if r.status_code in (200, 201) or (r.status_code == 409 and "receipt_no" in r.json()):
                return r.json()["receipt_no"]
            if r.status_code not in (409, 429, 503):
                raise AssertionError(f"unexpected {r.status_code}: {r.text[:200]}")
        except (httpx.TransportError, httpx.TimeoutException):
            if seen is not None:
                seen["transport"] += 1
            # the server went away mid-request: retry with the same key
        if loop.time() > end:
            raise AssertionError("no receipt before the deadline")
        await asyncio.sleep(0.2)


async def apply_all(
    base_url: str, letters, *, concurrency: int = 16, seen: collections.Counter | None = None
) -> list[str]:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:

        async def one(letter):
            async with sem:
                return await apply(client, letter, seen=seen)

        return await asyncio.gather(*(one(letter) for letter in letters))
