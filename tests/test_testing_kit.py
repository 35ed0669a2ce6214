"""llamaroute.testing itself: scripts, recording, redaction, chaos, clean shutdown."""

from __future__ import annotations

import socket

import httpx
import pytest

from llamaroute.testing import FakeOpenRouter, Step


def test_script_then_default_and_recording() -> None:
    with FakeOpenRouter(Step.error(429, retry_after=3), Step.reply("scripted")) as fake:
        url = f"{fake.base_url}/chat/completions"
        headers = {"Authorization": "Bearer sk-or-v1-SECRETSECRETSECRET"}
        with httpx.Client() as http:
            first = http.post(url, json={"model": "m", "messages": []}, headers=headers)
            second = http.post(url, json={"model": "m", "messages": []}, headers=headers)
            third = http.post(url, json={"model": "m", "messages": []}, headers=headers)
        assert (first.status_code, first.headers["retry-after"]) == (429, "3")
        assert first.json()["error"]["metadata"]["error_type"] == "rate_limit_exceeded"
        assert second.json()["choices"][0]["message"]["content"] == "scripted"
        assert third.json()["choices"][0]["message"]["content"] == fake.default_text
        assert fake.hits == 3
        assert fake.faults_injected == 1
        recorded = fake.requests[0]
        assert recorded.headers["authorization"].endswith("SECRETSECRETSECRET")
        assert "SECRET" not in repr(recorded)
        assert recorded.json == {"model": "m", "messages": []}


def test_requests_without_a_key_get_openrouters_401() -> None:
    with FakeOpenRouter() as fake, httpx.Client() as http:
        response = http.post(f"{fake.base_url}/chat/completions", json={})
    assert response.status_code == 401


def test_chaos_is_seeded_and_repeatable() -> None:
    def run() -> list[int]:
        with FakeOpenRouter() as fake, httpx.Client() as http:
            fake.chaos(rate=0.5, seed=42, faults=[Step.error(500), Step.error(503)])
            headers = {"Authorization": "Bearer k"}
            return [
                http.post(f"{fake.base_url}/chat/completions", json={}, headers=headers).status_code
                for _ in range(40)
            ]

    first, second = run(), run()
    assert first == second
    assert 5 < sum(status != 200 for status in first) < 35


def test_stop_closes_the_listening_socket() -> None:
    fake = FakeOpenRouter().start()
    port = fake.port
    fake.stop()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_url_needs_a_running_server() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = FakeOpenRouter().url
