"""Wire-level fakes of the three live price sources, on 127.0.0.1, for the refresh tests.

* :class:`FakeOpenRouterModels`: ``GET /api/v1/models`` and
  ``GET /api/v1/models/{author}/{slug}/endpoints``, as OpenRouter answers them.
* :class:`FakeAws`: the AWS Price List API (JSON 1.1, ``X-Amz-Target:
  AWSPriceListService.GetProducts``, paged by ``NextToken``) and Bedrock's control plane
  (REST-JSON ``GET /foundation-models``), answered to real boto3 clients.
"""

from __future__ import annotations

import json
from typing import Any

from llamaroute.testing import Exchange, FakeServer


def per_token(per_million: str) -> str:
    """OpenRouter's per-token string for a per-million price (as it writes them)."""
    from decimal import Decimal

    return f"{Decimal(per_million) / 1_000_000:f}"


def or_model(slug: str, prompt: str, completion: str, image: str | None = None) -> dict[str, Any]:
    pricing = {"prompt": prompt, "completion": completion, "request": "0"}
    if image is not None:
        pricing["image"] = image
    return {"id": slug, "canonical_slug": slug, "context_length": 131072, "pricing": pricing}


#: What the fake OpenRouter lists (plus one unrelated model).
OR_MODELS = [
    or_model("meta-llama/llama-3.2-1b-instruct", "0.000000031", "0.000000229"),
    or_model("meta-llama/llama-3.2-1b-instruct:free", "0", "0"),
    or_model("meta-llama/llama-3.2-3b-instruct", "-1", "-1"),
    or_model("meta-llama/llama-3.2-11b-vision-instruct", "0.000000049", "0.000000049", "0"),
    or_model("meta-llama/llama-3.2-90b-vision-instruct", "0.00000035", "0.0000004", "0.0005058"),
    or_model("openai/gpt-4o", "0.0000025", "0.00001", "0.003613"),
]

OR_ENDPOINTS = {
    "meta-llama/llama-3.2-90b-vision-instruct": [
        {"name": "DeepInfra | llama-3.2-90b", "provider_name": "DeepInfra",
         "pricing": {"prompt": "0.00000035", "completion": "0.0000004", "image": "0.0005058"}},
        {"name": "Together | llama-3.2-90b", "provider_name": "Together",
         "pricing": {"prompt": "0.0000012", "completion": "0.0000012"}},
    ],
}  # fmt: skip


class FakeOpenRouterModels(FakeServer):
    """OpenRouter's public model list. ``models`` and ``endpoints`` may be changed per test;
    ``raw`` (a body) and ``status`` replace every answer."""

    def __init__(self) -> None:
        super().__init__()
        self.models: list[dict[str, Any]] = [dict(m) for m in OR_MODELS]
        self.endpoints = dict(OR_ENDPOINTS)
        self.raw: bytes | None = None
        self.status = 200

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/v1"

    def handle(self, exchange: Exchange) -> None:
        if self.raw is not None or self.status != 200:
            exchange.send(self.status, self.raw or b'{"error": {"message": "down"}}')
            return
        path = exchange.path
        if path == "/api/v1/models":
            exchange.send(200, json.dumps({"data": self.models}).encode())
            return
        prefix, suffix = "/api/v1/models/", "/endpoints"
        slug = path[len(prefix) : -len(suffix)] if path.endswith(suffix) else ""
        if path.startswith(prefix) and slug in self.endpoints:
            body = {"data": {"id": slug, "endpoints": self.endpoints[slug]}}
            exchange.send(200, json.dumps(body).encode())
            return
        exchange.send(404, b'{"error": {"code": 404, "message": "not found"}}')


def aws_row(
    model: str,
    region: str,
    direction: str,
    usd: str,
    *,
    feature: str = "On-demand Inference",
    inference: str | None = None,
    unit: str = "1K tokens",
    usagetype: str | None = None,
) -> str:
    """One Price List item, as the JSON string ``get_products`` returns."""
    attributes = {
        "servicecode": "AmazonBedrock",
        "model": model,
        "feature": feature,
        "inferenceType": inference or f"{direction} tokens",
        "usagetype": usagetype or f"USE1-{model.replace(' ', '')}-{direction}-tokens",
        "regionCode": region,
        "location": region,
        "provider": "Meta",
    }
    sku = f"SKU{abs(hash((model, region, direction, feature, inference, unit))) % 10**8}"
    term = {
        "sku": sku,
        "priceDimensions": {
            f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                "unit": unit,
                "pricePerUnit": {"USD": usd},
                "description": f"{model} {direction}",
            }
        },
    }
    item = {
        "product": {"productFamily": "Inference", "sku": sku, "attributes": attributes},
        "serviceCode": "AmazonBedrock",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": term}},
        "version": "20261201",
    }
    return json.dumps(item)


def aws_rows() -> list[str]:
    """Llama 3.2 rows for us-east-1 and eu-west-1, with the kinds a refresh must tell apart."""
    rows = []
    for direction in ("input", "output"):
        rows += [
            aws_row("Llama 3.2 1B Instruct", "us-east-1", direction, "0.0001000000"),
            aws_row("Llama 3.2 3B Instruct", "us-east-1", direction, "0.0001500000"),
            # Priced per million "Units" rather than per 1K tokens.
            aws_row("Llama 3.2 11B Instruct", "us-east-1", direction, "0.1600000000",
                    unit="Units"),
            aws_row("Llama 3.2 90B Instruct", "us-east-1", direction, "0.0007200000"),
            # Rows that must not price the route.
            aws_row("Llama 3.2 1B Instruct", "us-east-1", direction, "0.0000500000",
                    feature="Batch Inference", inference=f"batch {direction} tokens"),
            aws_row("Llama 3.2 90B Instruct Latency Optimized", "us-east-1", direction,
                    "0.0009000000", feature="Latency Optimized Inference"),
            aws_row("Llama 3.2 3B Instruct", "us-east-1", direction, "0.0003000000",
                    feature="Extended Access Inference"),
            aws_row("Llama 3.1 8B Instruct", "us-east-1", direction, "0.0002200000"),
            aws_row("Llama 3.2 1B Instruct", "eu-west-1", direction, "0.0001100000"),
            aws_row("Llama 3.2 3B Instruct", "eu-west-1", direction, "0.0001700000"),
        ]  # fmt: skip
    return rows


def foundation_models() -> dict[str, Any]:
    def summary(size: str, status: str, **times: str) -> dict[str, Any]:
        return {
            "modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-2-{size}-"
            "instruct-v1:0",
            "modelId": f"meta.llama3-2-{size}-instruct-v1:0",
            "modelName": f"Llama 3.2 {size.upper()} Instruct",
            "providerName": "Meta",
            "inferenceTypesSupported": ["INFERENCE_PROFILE"],
            "modelLifecycle": {"status": status, **times},
        }

    return {
        "modelSummaries": [
            summary("1b", "LEGACY", legacyTime="2026-01-07T00:00:00Z",
                    publicExtendedAccessTime="2026-04-07T00:00:00Z",
                    endOfLifeTime="2027-07-07T00:00:00Z"),
            summary("3b", "ACTIVE"),
            summary("11b", "LEGACY", legacyTime="2026-01-07T00:00:00Z",
                    endOfLifeTime="2026-07-07T00:00:00Z"),
            summary("90b", "ACTIVE"),
        ]
    }  # fmt: skip


class FakeAws(FakeServer):
    """The AWS Price List API and Bedrock's ``ListFoundationModels`` on one port.

    ``page_size`` rows per ``GetProducts`` page; ``calls`` records each ``GetProducts``
    request body; ``status``/``error_code`` make every call fail.
    """

    def __init__(self, rows: list[str] | None = None, page_size: int = 3) -> None:
        super().__init__()
        self.rows = aws_rows() if rows is None else rows
        self.page_size = page_size
        self.lifecycle = foundation_models()
        self.calls: list[dict[str, Any]] = []
        self.status = 200
        self.error_code = "ServiceUnavailableException"

    def handle(self, exchange: Exchange) -> None:
        if self.status != 200:
            body = {"__type": self.error_code, "message": "try later"}
            exchange.send(
                self.status,
                json.dumps(body).encode(),
                {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": self.error_code},
            )
            return
        target = exchange.request.headers.get("x-amz-target", "")
        if target == "AWSPriceListService.GetProducts":
            self._products(exchange)
        elif exchange.path == "/foundation-models":
            exchange.send(200, json.dumps(self.lifecycle).encode())
        else:
            exchange.send(404, b'{"message": "unknown operation"}')

    def _products(self, exchange: Exchange) -> None:
        request = exchange.json
        self.calls.append(request)
        region = next(f["Value"] for f in request["Filters"] if f["Field"] == "regionCode")
        matching = [r for r in self.rows if json.loads(r)["product"]["attributes"]
                    ["regionCode"] == region]  # fmt: skip
        start = int(request.get("NextToken") or 0)
        page = matching[start : start + self.page_size]
        answer: dict[str, Any] = {"FormatVersion": "aws_v1", "PriceList": page}
        if start + self.page_size < len(matching):
            answer["NextToken"] = str(start + self.page_size)
        exchange.send(
            200, json.dumps(answer).encode(), {"Content-Type": "application/x-amz-json-1.1"}
        )
