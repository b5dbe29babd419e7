"""Hostile HTTP requests against a real API process and the one check every answer must pass:
a 4xx JSON `{"error", "detail"}`, never a 500 (tests/e2e/test_fault_http*.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from tests.e2e.faults import Report

Request = tuple[str, str, dict[str, str], Any]  # method, path, headers, json body or raw bytes


async def send(client: httpx.AsyncClient, request: Request) -> httpx.Response:
    method, path, headers, body = request
    if isinstance(body, bytes):
        return await client.request(method, path, headers=headers, content=body)
    return await client.request(method, path, headers=headers, json=body)


async def error_answers(
    url: str, cases: Sequence[tuple[str, Request]]
) -> dict[str, tuple[int, str]]:
    """Each case's status and JSON `error` code ("<no JSON error>" when the body is not one)."""
    answers: dict[str, tuple[int, str]] = {}
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as client:
        for label, request in cases:
            answer = await send(client, request)
            try:
                body = answer.json()
            except ValueError:
                body = {}
            answers[label] = (answer.status_code, body.get("error", "<no JSON error>"))
    return answers


def check_all_4xx_json(scenario: str, answers: dict[str, tuple[int, str]]) -> None:
    """Reports the answers and fails for any that is not a 4xx JSON error."""
    report = Report(scenario, published=0, faults=len(answers))
    report.notes.append(", ".join(f"{label}: {s} {e}" for label, (s, e) in answers.items()))
    report.emit()
    bad = {label: a for label, a in answers.items() if not (400 <= a[0] < 500) or "<" in a[1]}
    assert bad == {}, f"answers that are not a 4xx JSON error: {bad}"
