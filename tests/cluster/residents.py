"""Residents submitting through HAProxy while something fails: one Idempotency-Key per resident, reused on
every retry, and every answer recorded with its time, so a scenario can say when service stopped and came
back and how many requests were shed meanwhile."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import httpx

from tests.intake.helpers import application_body

# What a client retries: the app's own fast refusals (busy, rate-limited, a duplicate still in flight) and
# what a proxy says while no node can answer. A 500 is never retried: it is a bug and fails the scenario.
RETRIED = {409, 429, 502, 503, 504}


@dataclass
class Log:
    events: list[tuple[float, int | str]] = field(default_factory=list)  # (monotonic time, status or "transport")

    def since(self, t: float) -> list[tuple[float, int | str]]:
        return [e for e in self.events if e[0] >= t]

    def shed(self, t: float) -> int:
        """Answers after t that were not a receipt (each was retried)."""
        return sum(1 for _, s in self.since(t) if s not in (200, 201))

    def first_receipt_after(self, t: float) -> float | None:
        """Seconds from t to the first receipt handed out for a request sent after t."""
        times = [when for when, s in self.since(t) if s in (200, 201)]
        return min(times) - t if times else None

    def statuses(self) -> dict:
        out: dict = {}
        for _, s in self.events:
            out[s] = out.get(s, 0) + 1
        return out


async def apply(client: httpx.AsyncClient, letter, log: Log, *, deadline_s: float = 150) -> str:
    key = uuid.uuid4().hex
    body = application_body(letter)
    end = time.monotonic() + deadline_s
    while True:
        try:
            r = await client.post("/api/v1/applications", json=body, headers={"Idempotency-Key": key})
            log.events.append((time.monotonic(), r.status_code))
            if r.status_code in (200, 201) or (r.status_code == 409 and "receipt_no" in r.json()):
                return r.json()["receipt_no"]
            if r.status_code not in RETRIED:
                raise AssertionError(f"unexpected {r.status_code}: {r.text[:300]}")
        except (httpx.TransportError, httpx.TimeoutException):
            log.events.append((time.monotonic(), "transport"))
        if time.monotonic() > end:
            raise AssertionError("no receipt before the deadline")
        await asyncio.sleep(0.2)


async def apply_all(base_url: str, letters, log: Log, *, concurrency: int = 16) -> list[str]:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:

        async def one(letter):
            async with sem:
                return await apply(client, letter, log)

        return await asyncio.gather(*(one(letter) for letter in letters))
