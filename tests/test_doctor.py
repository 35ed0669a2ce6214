"""``llamaroute doctor`` says only what is true (issue 16, item 12): Ollama serves the models
whose tags are pulled, an OpenRouter ``/models`` that answers 501 makes it unusable, Bedrock's
credentials are checked with a signed ``ListFoundationModels`` call, and a configured provider
that is not usable makes doctor exit 1. Every server is on 127.0.0.1: the fakes, and small
handlers here for what the fakes do not serve (Bedrock's control plane, a broken gateway)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from llamaroute.testing import FakeOllama, FakeOpenRouter

from .conftest import CANARY_KEY, socket_error_text
from .test_cli import run

#: Must never show up in doctor's output.
AWS_CANARY = "canary-aws-value-that-doctor-must-never-print"


class _Server:
    """A tiny HTTP server on 127.0.0.1 answering ``routes[(method, path)]`` with
    ``(status, headers, body)``, and recording each request's path and headers."""

    def __init__(self, routes: dict[tuple[str, str], tuple[int, dict[str, str], Any]]) -> None:
        self.routes = routes
        self.seen: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version: ClassVar[str] = "HTTP/1.1"  # type: ignore[misc]

            def do_GET(self) -> None:
                server.seen.append((self.path, dict(self.headers)))
                path = self.path.split("?", 1)[0]
                status, headers, body = server.routes.get(("GET", path), (404, {}, {}))
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.shutdown()
        self.http.server_close()


def _llama_models(status: str = "ACTIVE") -> dict[str, Any]:
    return {"modelSummaries": [
        {"modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-2-{size}",
         "modelId": f"meta.llama3-2-{size}-instruct-v1:0", "providerName": "Meta",
         "modelLifecycle": {"status": status if size == "90b" else "ACTIVE"}}
        for size in ("1b", "3b", "11b", "90b")
    ]}  # fmt: skip


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("OLLAMA_HOST", "OLLAMA_API_KEY", "OPENROUTER_API_KEY", "OPENROUTER_BASE_URL",
                 "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_BEARER_TOKEN_BEDROCK", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ENDPOINT_URL",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_REGION", "AWS_DEFAULT_REGION", "LLAMAROUTE_CATALOG"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


@pytest.fixture
def bedrock_env(clean_env: pytest.MonkeyPatch) -> Iterator[tuple[pytest.MonkeyPatch, _Server]]:
    control = _Server({("GET", "/foundation-models"): (200, {}, _llama_models("LEGACY"))})
    with control:
        clean_env.setenv("AWS_ACCESS_KEY_ID", "doctor-test-key-id")
        clean_env.setenv("AWS_SECRET_ACCESS_KEY", AWS_CANARY)
        clean_env.setenv("AWS_REGION", "us-east-1")
        clean_env.setenv("AWS_ENDPOINT_URL_BEDROCK", control.url)
        yield clean_env, control


def _report(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any], dict[str, Any]]:
    code, out, err = run(capsys, "doctor", "--json")
    assert CANARY_KEY not in out + err
    assert AWS_CANARY not in out + err
    data = json.loads(out)
    return code, data, {entry["provider"]: entry for entry in data["providers"]}


def test_ollama_serves_only_the_models_whose_tags_are_pulled(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOllama(models=["llama3.2-vision:11b"]) as ollama:
        clean_env.setenv("OLLAMA_HOST", ollama.url)
        code, _, report = _report(capsys)
        assert code == 0
        assert report["ollama"]["models"] == ["llama-3.2-11b-vision"]
        assert (
            "llama-3.2-90b-vision is not pulled: ollama pull llama3.2-vision:90b"
            in (report["ollama"]["notes"])
        )
        ollama.models = []
        code, _, report = _report(capsys)
        assert code == 1  # up, but serving nothing of the catalog: not usable
        assert report["ollama"]["models"] == []


def test_an_openrouter_models_list_answering_501_makes_doctor_fail(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with _Server({("GET", "/api/v1/models"): (501, {}, {"error": "not implemented"})}) as broken:
        clean_env.setenv("OPENROUTER_API_KEY", CANARY_KEY)
        clean_env.setenv("OPENROUTER_BASE_URL", f"{broken.url}/api/v1")
        code, data, report = _report(capsys)
        assert code == 1
        assert data["usable"] is False
        assert report["openrouter"]["usable"] is False
        assert "/models answered HTTP 501" in report["openrouter"]["status"]
        code, out, _ = run(capsys, "doctor")
        assert code == 1
        assert "not usable: openrouter" in out


def test_an_openrouter_url_that_answers_no_model_list_makes_doctor_fail(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with _Server({("GET", "/api/v1/models"): (200, {}, {"hello": "world"})}) as wrong:
        clean_env.setenv("OPENROUTER_API_KEY", CANARY_KEY)
        clean_env.setenv("OPENROUTER_BASE_URL", f"{wrong.url}/api/v1")
        code, _, report = _report(capsys)
        assert code == 1
        assert "answered 200 but not with a model list" in report["openrouter"]["status"]
        assert [path for path, _ in wrong.seen] == ["/api/v1/models"]  # the key is not sent


def test_an_unreachable_openrouter_is_not_usable(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with _Server({}) as gone:
        url = gone.url
    clean_env.setenv("OPENROUTER_API_KEY", CANARY_KEY)
    clean_env.setenv("OPENROUTER_BASE_URL", f"{url}/api/v1")
    code, _, report = _report(capsys)
    assert code == 1
    # The reason in httpx's own words after its class name (the errno's text varies by OS).
    assert report["openrouter"]["status"].startswith(
        f"not usable: unreachable at {url}/api/v1: ConnectError: "
    )


def test_the_openrouter_key_is_checked_where_the_api_can(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = {"data": [{"id": "meta-llama/llama-3.2-3b-instruct"}]}
    routes: dict[tuple[str, str], tuple[int, dict[str, str], Any]] = {
        ("GET", "/api/v1/models"): (200, {}, listing),
        ("GET", "/api/v1/key"): (401, {}, {"error": {"code": 401, "message": "No auth"}}),
    }
    with _Server(routes) as server:
        clean_env.setenv("OPENROUTER_API_KEY", CANARY_KEY)
        clean_env.setenv("OPENROUTER_BASE_URL", f"{server.url}/api/v1")
        code, _, report = _report(capsys)
        assert code == 1
        assert report["openrouter"]["credentials"] == "rejected"
        assert server.seen[-1][1]["Authorization"] == f"Bearer {CANARY_KEY}"
        routes[("GET", "/api/v1/key")] = (200, {}, {"data": {"label": "sk-or-v1-can...def"}})
        code, _, report = _report(capsys)
        assert code == 0
        assert report["openrouter"]["credentials"] == "accepted"
        assert report["openrouter"]["models"] == ["llama-3.2-3b"]  # only what /models lists


def test_the_fake_openrouter_without_a_key_endpoint_leaves_the_key_unchecked(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenRouter() as fake:
        clean_env.setenv("OPENROUTER_API_KEY", CANARY_KEY)
        clean_env.setenv("OPENROUTER_BASE_URL", fake.base_url)
        code, _, report = _report(capsys)
        assert code == 0
        assert report["openrouter"]["credentials"] == "not checked"
        assert "the API key was not checked" in report["openrouter"]["status"]


def test_bedrock_credentials_are_checked_with_a_signed_call(
    bedrock_env: tuple[pytest.MonkeyPatch, _Server], capsys: pytest.CaptureFixture[str]
) -> None:
    _, control = bedrock_env
    code, _, report = _report(capsys)
    assert code == 0
    bedrock = report["bedrock"]
    assert bedrock["credentials"] == "accepted"
    assert "ListFoundationModels answered" in bedrock["status"]
    assert bedrock["models"] == ["llama-3.2-1b", "llama-3.2-3b", "llama-3.2-11b-vision",
                                 "llama-3.2-90b-vision"]  # fmt: skip
    assert "llama-3.2-90b-vision: meta.llama3-2-90b-instruct-v1:0 is LEGACY" in bedrock["notes"]
    [(path, headers)] = control.seen
    assert path == "/foundation-models?byProvider=meta"
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=doctor-test-key-id/")


def test_rejected_bedrock_credentials_make_doctor_fail(
    bedrock_env: tuple[pytest.MonkeyPatch, _Server], capsys: pytest.CaptureFixture[str]
) -> None:
    _, control = bedrock_env
    control.routes[("GET", "/foundation-models")] = (
        403, {"x-amzn-ErrorType": "UnrecognizedClientException:"},
        {"message": "The security token included in the request is invalid."},
    )  # fmt: skip
    code, out, _ = run(capsys, "doctor")
    assert code == 1
    assert "bedrock: region us-east-1; AWS credentials from env rejected" in out
    assert "UnrecognizedClientException" in out
    assert "not usable: bedrock" in out
    assert AWS_CANARY not in out


def test_denied_listing_still_proves_the_credentials(
    bedrock_env: tuple[pytest.MonkeyPatch, _Server], capsys: pytest.CaptureFixture[str]
) -> None:
    _, control = bedrock_env
    control.routes[("GET", "/foundation-models")] = (
        403, {"x-amzn-ErrorType": "AccessDeniedException:"}, {"message": "not authorized"},
    )  # fmt: skip
    code, _, report = _report(capsys)
    assert code == 0
    assert report["bedrock"]["credentials"] == "accepted"
    assert "model access was not checked" in report["bedrock"]["status"]


def test_an_unreachable_bedrock_is_not_usable(
    bedrock_env: tuple[pytest.MonkeyPatch, _Server], capsys: pytest.CaptureFixture[str],
    refused_port: int,
) -> None:  # fmt: skip
    monkeypatch, _ = bedrock_env
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK", f"http://127.0.0.1:{refused_port}")
    code, _, report = _report(capsys)
    assert code == 1
    assert "Bedrock did not answer" in report["bedrock"]["status"]
    assert "Could not connect to the endpoint URL" in report["bedrock"]["status"]  # boto3's words


def test_an_unreachable_host_is_named_with_its_reason_in_plain_words(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A mistyped host: the resolver's own words, not a class name ("ConnectError") or "start
    # it: ollama serve", which sends the user to the wrong fix.
    nowhere = "nowhere.invalid"  # reserved: never resolves (RFC 2606)
    clean_env.setenv("OPENROUTER_API_KEY", CANARY_KEY)
    clean_env.setenv("OPENROUTER_BASE_URL", f"http://{nowhere}/api/v1")
    clean_env.setenv("OLLAMA_HOST", f"http://{nowhere}:11434")
    code, _, report = _report(capsys)
    assert code == 1
    unresolved = socket_error_text(nowhere)
    assert unresolved in report["openrouter"]["status"]
    assert unresolved in report["ollama"]["status"]
    assert "ollama serve" not in report["ollama"]["status"]
