"""`llamaroute prices refresh`: the live price sources read through wire-level fakes (real httpx
against a fake OpenRouter, real boto3 against a fake AWS Price List API and Bedrock control
plane), the dated file it writes, and the estimate that then uses and names it."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from llamaroute import (
    Catalog,
    ConfigurationError,
    MalformedResponseError,
    ProviderError,
    ServerError,
    estimate,
    load_catalog,
    refresh_prices,
)
from llamaroute.catalog import (
    default_catalog,
    default_prices_path,
    per_million,
    render_price_file,
)
from llamaroute.cli import main
from llamaroute.providers.bedrock import bedrock_lifecycle, bedrock_prices, classify_aws_row
from llamaroute.providers.openrouter import fetch_openrouter_listing, openrouter_prices

from ._price_fakes import (
    FakeAws,
    FakeOpenRouterModels,
    aws_row,
    aws_rows,
    foundation_models,
)

TODAY = date(2026, 12, 7)
OR_90B = "meta-llama/llama-3.2-90b-vision-instruct"
US_1B = "us.meta.llama3-2-1b-instruct-v1:0"
EU_1B = "eu.meta.llama3-2-1b-instruct-v1:0"


@pytest.fixture
def openrouter() -> Iterator[FakeOpenRouterModels]:
    with FakeOpenRouterModels() as fake:
        yield fake


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeAws]:
    # Fake credentials through the environment; no AWS config file of the developer's is read.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with FakeAws() as fake:
        yield fake


# --- pure reading ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_token", "expected"),
    [
        ("0.00000035", "0.35"),
        ("0.0000004", "0.4"),
        ("0.000000027", "0.027"),
        ("0.000000201", "0.201"),
        ("0.000000049", "0.049"),
        ("0", "0"),
        ("0.0000000000000001", "1E-10"),
        (Decimal("0.0000012"), "1.2"),
    ],
)
def test_per_token_strings_become_exact_per_million_decimals(
    per_token: object, expected: str
) -> None:
    amount = per_million(per_token)
    assert isinstance(amount, Decimal)
    assert amount == Decimal(expected)
    assert str(amount) == expected


def test_dynamic_and_unreadable_prices() -> None:
    assert per_million("-1") is None
    for bad in (0.00000035, "abc", "-0.5", "NaN", None, True):
        with pytest.raises(ValueError):
            per_million(bad)


def test_openrouter_listing_prices_each_route_and_skips_dynamic() -> None:
    from ._price_fakes import OR_ENDPOINTS, OR_MODELS

    endpoints = {slug: {"data": {"endpoints": rows}} for slug, rows in OR_ENDPOINTS.items()}
    read = openrouter_prices(
        {"data": OR_MODELS}, endpoints, Catalog.builtin(), source="https://x/models",
        checked=TODAY,
    )  # fmt: skip
    prices = {p.model_id: p for p in read.prices}
    big = prices[OR_90B]
    assert (big.input_per_mtok, big.output_per_mtok) == (Decimal("0.35"), Decimal("0.4"))
    assert big.image == Decimal("0.0005058")  # per image, not per token
    assert big.source == "https://x/models"
    assert big.checked == TODAY
    assert "DeepInfra 0.35/0.4" in big.notes
    assert "Together 1.2/1.2" in big.notes
    assert "input 0.35 to 1.2 per M" in big.notes
    assert prices["meta-llama/llama-3.2-1b-instruct:free"].input_per_mtok == 0
    # 3B is dynamic (-1): skipped, with a note; the :free variants not listed are noted too.
    assert "meta-llama/llama-3.2-3b-instruct" not in prices
    assert any("3b-instruct has a dynamic price" in n for n in read.notes)
    assert any("3b-instruct:free is not in /models" in n for n in read.notes)


@pytest.mark.parametrize(
    ("attributes", "kind"),
    [
        ({"feature": "On-demand Inference", "inferenceType": "input tokens"}, "on_demand"),
        ({"feature": "Batch Inference", "inferenceType": "batch input tokens"}, "batch"),
        ({"feature": "On-demand Inference", "model": "Llama 3.2 90B Latency Optimized"},
         "latency_optimized"),
        ({"feature": "Extended Access Inference"}, "extended_access"),
        ({"feature": "On-demand Inference", "inferenceType": "flex input tokens"}, "flex"),
        ({"feature": "On-demand Inference", "inferenceType": "priority output tokens"},
         "priority"),
        ({"feature": "Provisioned Throughput", "usagetype": "USE1-ModelUnit"}, "provisioned"),
        ({"feature": "Cross Region Inference", "inferenceType": "input tokens"}, "cross_region"),
        ({"feature": "On-demand Inference", "usagetype": "Global-Llama-input"}, "cross_region"),
        ({"feature": "Knowledge Base"}, "other"),
    ],
)  # fmt: skip
def test_aws_rows_are_told_apart(attributes: dict[str, str], kind: str) -> None:
    assert classify_aws_row(attributes) == kind


def test_aws_rows_price_only_on_demand_per_region() -> None:
    read = bedrock_prices(aws_rows(), Catalog.builtin(), source="aws", checked=TODAY)
    by = {(p.model_id, p.regions): p for p in read.prices}
    us = by[(US_1B, ("us-east-1",))]
    # 0.0001 per 1K tokens is 0.1 per M (not the batch 0.05, nor another model's price).
    assert (us.input_per_mtok, us.output_per_mtok) == (Decimal("0.1"), Decimal("0.1"))
    assert "batch 0.05/0.05" in us.notes
    # Per-million "Units" rows are taken as they are.
    eleven = by[("us.meta.llama3-2-11b-instruct-v1:0", ("us-east-1",))]
    assert eleven.input_per_mtok == Decimal("0.16")
    # Not the latency-optimised 0.90, nor the extended-access 0.30.
    assert by[("us.meta.llama3-2-90b-instruct-v1:0", ("us-east-1",))].input_per_mtok == Decimal(
        "0.72"
    )
    assert by[("us.meta.llama3-2-3b-instruct-v1:0", ("us-east-1",))].input_per_mtok == Decimal(
        "0.15"
    )
    # eu-west-1 selects the eu. profile.
    assert by[(EU_1B, ("eu-west-1",))].input_per_mtok == Decimal("0.11")
    assert len(read.prices) == 6
    joined = " ".join(read.notes)
    assert "latency-optimized" in joined
    assert "extended-access" in joined


def test_a_bedrock_route_is_priced_per_source_region(tmp_path: Path) -> None:
    read_per_1k = (("us-west-2", "0.0002"), ("us-east-1", "0.0001"), ("us-east-2", "0.0003"))
    rows = [
        aws_row("Llama 3.2 1B Instruct", region, direction, usd)
        for region, usd in read_per_1k
        for direction in ("input", "output")
    ]
    catalog = Catalog.builtin()
    read = bedrock_prices(rows, catalog, source="aws", checked=TODAY)
    assert len(read.prices) == 3
    out = tmp_path / "p.toml"
    out.write_text(render_price_file(read.prices, [], catalog))
    layered = load_catalog(out)
    route = layered.get("llama-3.2-1b").route("bedrock", region="us-east-1")
    for region, per_1k in read_per_1k:
        price = layered.price(route, region=region)
        assert price is not None
        assert price.regions == (region,)
        assert price.input_per_mtok == Decimal(per_1k) * 1000
    # With the caller's region unknown, the dearest region's price: never an under-estimate.
    unknown = layered.price(route)
    assert unknown is not None
    assert unknown.input_per_mtok == Decimal("0.3")
    assert out.read_text().count("[[prices]]") == 3  # every region read is kept in the file


def test_an_aws_region_without_a_route_is_noted() -> None:
    rows = [aws_row("Llama 3.2 90B Instruct", "eu-west-1", d, "0.001") for d in ("input", "output")]
    read = bedrock_prices(rows, Catalog.builtin(), source="aws", checked=TODAY)
    assert read.prices == []
    assert read.notes == ["bedrock: Llama 3.2 90b in eu-west-1: no route from that region"]


def test_lifecycle_is_read_per_foundation_model() -> None:
    read = bedrock_lifecycle(foundation_models(), Catalog.builtin(), source="aws", checked=TODAY)
    lives = {life.model_id: life for life in read.lifecycles}
    assert lives[US_1B].lifecycle == "legacy"
    assert lives[US_1B].end_of_life == date(2027, 7, 7)
    assert lives[EU_1B].legacy_date == date(2026, 1, 7)  # the eu. profile of the same model
    assert lives["us.meta.llama3-2-11b-instruct-v1:0"].lifecycle == "eol"  # past its end
    assert lives["us.meta.llama3-2-3b-instruct-v1:0"].lifecycle == "active"
    assert any("extended access" in note for note in read.notes)


# --- through the wire -----------------------------------------------------------------------


def test_refresh_writes_a_dated_sourced_file_the_catalog_loads(
    openrouter: FakeOpenRouterModels, aws: FakeAws, tmp_path: Path
) -> None:
    out = tmp_path / "prices.toml"
    result = refresh_prices(
        out, regions=["us-east-1", "eu-west-1"], openrouter_url=openrouter.base_url,
        aws_endpoint_url=aws.url, today=TODAY,
    )  # fmt: skip
    assert result.ok, result.errors
    assert result.path == out
    content = tomllib.loads(out.read_text())
    for entry in content["prices"]:
        assert entry["checked"] == TODAY
        assert entry["source"]
    sources = {entry["source"] for entry in content["prices"]}
    assert f"{openrouter.base_url}/models" in sources
    assert "aws pricing:GetProducts ServiceCode=AmazonBedrock regionCode=eu-west-1" in sources
    # Amounts are written as exact strings.
    big = next(e for e in content["prices"] if e["model_id"] == OR_90B)
    assert (big["input_per_mtok"], big["output_per_mtok"], big["image"]) == (
        "0.35", "0.4", "0.0005058",
    )  # fmt: skip
    # Pagination: 14 us-east-1 rows... in pages of 3, each page asked for with NextToken.
    tokens = [call.get("NextToken") for call in aws.calls]
    assert tokens.count(None) == 2
    assert len(aws.calls) > 4
    assert all(call["ServiceCode"] == "AmazonBedrock" for call in aws.calls)
    assert all(call["FormatVersion"] == "aws_v1" for call in aws.calls)

    catalog = load_catalog(out)
    us = catalog.get("llama-3.2-1b").route("bedrock", region="us-east-1")
    eu = catalog.get("llama-3.2-1b").route("bedrock", region="eu-west-1")
    assert catalog.price(eu) is not None
    assert catalog.price(eu, region="eu-west-1").input_per_mtok == Decimal("0.11")
    assert catalog.price(eu, region="eu-west-1").origin == str(out)
    assert (us.lifecycle, us.legacy_date, us.end_of_life) == (
        "legacy", date(2026, 1, 7), date(2027, 7, 7),
    )  # fmt: skip
    assert "ListFoundationModels" in us.lifecycle_source
    assert us.lifecycle_checked == TODAY
    assert catalog.price(catalog.get("llama-3.2-90b-vision").route("openrouter")).image == (
        Decimal("0.0005058")
    )


def test_the_diff_compares_with_what_is_in_use(
    openrouter: FakeOpenRouterModels, aws: FakeAws, tmp_path: Path
) -> None:
    result = refresh_prices(
        tmp_path / "p.toml", regions=["us-east-1"], openrouter_url=openrouter.base_url,
        aws_endpoint_url=aws.url, today=TODAY, dry_run=True,
    )  # fmt: skip
    assert result.path is None
    assert not (tmp_path / "p.toml").exists()
    changes = {(c.route, c.what): c for c in result.changes}
    one = changes[("openrouter:meta-llama/llama-3.2-1b-instruct", "price")]
    assert (one.old, one.new, one.changed) == ("0.027/0.201", "0.031/0.229", True)
    big = changes[(f"openrouter:{OR_90B}", "price")]
    assert big.new == "0.35/0.4 img 0.0005058"
    same = changes[(f"bedrock:{US_1B}", "price")]
    assert (same.old, same.new, same.changed) == ("0.1/0.1", "0.1/0.1", False)
    life = changes[(f"bedrock:{US_1B}", "lifecycle")]
    assert (life.old, life.new) == (
        "legacy, eol 2026-07-07",
        "legacy, legacy 2026-01-07, eol 2027-07-07",
    )


def test_cli_refresh_then_estimate_uses_and_names_the_file(
    openrouter: FakeOpenRouterModels,
    aws: FakeAws,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "config" / "prices.toml"
    monkeypatch.setenv("LLAMAROUTE_PRICES", str(path))
    code = main(["prices", "refresh", "--openrouter-url", openrouter.base_url,
                 "--aws-endpoint-url", aws.url, "--region", "us-east-1"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"wrote {path}" in out
    assert "0.027/0.201" in out
    assert "0.031/0.229" in out
    assert "lifecycle" in out
    assert "eol 2027-07-07" in out
    assert path.exists()

    # A later estimate (default catalog, no flags) uses the refreshed price and names the file.
    code = main(["estimate", "--model", "llama-3.2-1b", "--prompt", "hi", "--provider",
                 "openrouter"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert f"Using refreshed prices from {path}" in out
    assert f"{openrouter.base_url}/models" in out

    code = main(["estimate", "--model", "llama-3.2-1b", "--prompt", "hi", "--provider",
                 "openrouter", "--json"])  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    price = data["estimates"][0]["price"]
    assert price["input_per_mtok"] == "0.031"
    assert price["output_per_mtok"] == "0.229"
    assert price["origin"] == str(path)
    assert price["source"] == f"{openrouter.base_url}/models"
    assert price["checked"] == date.today().isoformat()

    # The Python API's default catalog too.
    item = estimate("llama-3.2-1b", "hi", providers=["openrouter"])[0]
    assert item.price is not None
    assert item.price.origin == str(path)
    assert default_catalog() is not Catalog.builtin()

    # `llamaroute prices` lists it and names the file.
    assert main(["prices", "llama-3.2-1b"]) == 0
    assert f"Using refreshed prices from {path}" in capsys.readouterr().out


def test_a_failing_source_is_reported_and_the_other_still_written(
    openrouter: FakeOpenRouterModels,
    aws: FakeAws,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    aws.status = 503
    out = tmp_path / "prices.toml"
    code = main(["prices", "refresh", "--out", str(out), "--openrouter-url",
                 openrouter.base_url, "--aws-endpoint-url", aws.url])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    assert "llamaroute: error: bedrock: [bedrock] (HTTP 503) AWS Price List: try later" in (
        captured.err
    )
    assert f"wrote {out}" in captured.out
    providers = {entry["provider"] for entry in tomllib.loads(out.read_text())["prices"]}
    assert providers == {"openrouter"}

    result = refresh_prices(out, sources=["bedrock"], aws_endpoint_url=aws.url)
    assert isinstance(result.errors["bedrock"], ServerError)
    assert result.path is None  # nothing read: the earlier file is left alone
    assert "openrouter" in out.read_text()


def test_missing_aws_credentials_say_so_and_openrouter_still_refreshes(
    openrouter: FakeOpenRouterModels,
    aws: FakeAws,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    result = refresh_prices(
        tmp_path / "p.toml", openrouter_url=openrouter.base_url, aws_endpoint_url=aws.url
    )
    error = result.errors["bedrock"]
    assert isinstance(error, ConfigurationError)
    assert "no AWS credentials found" in str(error)
    assert "--only openrouter" in str(error)
    assert aws.hits == 0
    assert result.path is not None
    assert result.prices
    assert {p.provider for p in result.prices} == {"openrouter"}


def test_a_later_partial_refresh_keeps_the_other_source(
    openrouter: FakeOpenRouterModels, aws: FakeAws, tmp_path: Path
) -> None:
    out = tmp_path / "prices.toml"
    refresh_prices(out, regions=["us-east-1"], openrouter_url=openrouter.base_url,
                   aws_endpoint_url=aws.url)  # fmt: skip
    openrouter.models[0] = {
        **openrouter.models[0],
        "pricing": {"prompt": "0.00000003", "completion": "0.0000002"},
    }
    result = refresh_prices(out, sources=["openrouter"], openrouter_url=openrouter.base_url)
    assert result.ok
    catalog = load_catalog(out)
    spec = catalog.get("llama-3.2-1b")
    assert catalog.price(spec.route("openrouter")).input_per_mtok == Decimal("0.03")
    us = spec.route("bedrock", region="us-east-1")
    assert catalog.price(us).origin == str(out)  # the Bedrock entries were kept
    assert us.lifecycle == "legacy"


def test_openrouter_failures_are_typed(openrouter: FakeOpenRouterModels) -> None:
    openrouter.raw = b'{"data": [ {"id": "x", '
    with pytest.raises(MalformedResponseError, match="not valid JSON"):
        fetch_openrouter_listing([OR_90B], base_url=openrouter.base_url)
    openrouter.raw = b'{"data": [' + b'{"id": "padding"},' * 20_000 + b"{}]}"
    with pytest.raises(MalformedResponseError, match="over 10,000 bytes") as caught:
        fetch_openrouter_listing([OR_90B], base_url=openrouter.base_url, max_bytes=10_000)
    assert caught.value.code == "too_large"
    openrouter.raw = b'{"models": []}'
    with pytest.raises(MalformedResponseError, match="no 'data' list"):
        fetch_openrouter_listing([OR_90B], base_url=openrouter.base_url)
    openrouter.raw, openrouter.status = None, 502
    with pytest.raises(ServerError, match="HTTP 502"):
        fetch_openrouter_listing([OR_90B], base_url=openrouter.base_url)


def test_an_unreachable_openrouter_is_a_connection_error(tmp_path: Path) -> None:
    with FakeOpenRouterModels() as fake:
        url = fake.base_url  # closed once the block ends: nothing listens there
    result = refresh_prices(tmp_path / "p.toml", sources=["openrouter"], openrouter_url=url)
    assert isinstance(result.errors["openrouter"], ProviderError)
    assert result.errors["openrouter"].code == "connection_refused"
    assert not (tmp_path / "p.toml").exists()


def test_unknown_source_and_bad_region_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown price source"):
        refresh_prices(tmp_path / "p.toml", sources=["azure"])
    result = refresh_prices(tmp_path / "p.toml", sources=["bedrock"], regions=["us-est-1"])
    assert isinstance(result.errors["bedrock"], ConfigurationError)
    assert "us-east-1" in str(result.errors["bedrock"])


def test_default_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_prices_path({"LLAMAROUTE_PRICES": "/x/p.toml"}) == Path("/x/p.toml")
    assert default_prices_path({"XDG_CONFIG_HOME": "/cfg"}) == Path("/cfg/llamaroute/prices.toml")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_prices_path({}) == tmp_path / ".config" / "llamaroute" / "prices.toml"
    # Tests run with a path that does not exist: the default catalog is the shipped one.
    assert default_catalog() is Catalog.builtin()


def test_a_client_prices_calls_with_the_refreshed_file_and_says_so(
    openrouter: FakeOpenRouterModels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llamaroute import Client, Usage
    from llamaroute.money import cost_from_usage
    from llamaroute.providers import OpenRouterProvider

    path = tmp_path / "prices.toml"
    monkeypatch.setenv("LLAMAROUTE_PRICES", str(path))
    refresh_prices(sources=["openrouter"], openrouter_url=openrouter.base_url)
    provider = OpenRouterProvider(api_key="sk-or-v1-test", base_url=openrouter.base_url)
    with Client(providers=[provider]) as client:
        route = client.catalog.get("llama-3.2-1b").route("openrouter")
        price = client.catalog.price(route)
    assert price is not None
    assert price.origin == str(path)
    cost = cost_from_usage(Usage(input_tokens=1_000_000, output_tokens=1_000_000), price)
    assert cost is not None
    assert cost.total == Decimal("0.260")  # 0.031 + 0.229, exactly
    assert (cost.price_source, cost.price_checked, cost.price_origin) == (
        f"{openrouter.base_url}/models", date.today(), str(path),
    )  # fmt: skip


def test_a_refreshed_file_that_no_longer_fits_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[[prices]]\nprovider = "openrouter"\nmodel_id = "meta-llama/llama-3.2-7b-retired"\n'
        'input_per_mtok = "1"\noutput_per_mtok = "1"\nsource = "x"\nchecked = 2026-12-01\n'
    )
    monkeypatch.setenv("LLAMAROUTE_PRICES", str(path))
    with pytest.raises(ConfigurationError, match="prices refresh` again, or delete"):
        default_catalog()


def test_a_workload_estimate_names_the_refreshed_file(
    openrouter: FakeOpenRouterModels,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "prices.toml"
    monkeypatch.setenv("LLAMAROUTE_PRICES", str(path))
    refresh_prices(sources=["openrouter"], openrouter_url=openrouter.base_url)
    workload = tmp_path / "w.jsonl"
    workload.write_text('{"prompt": "hello"}\n{"prompt": "hello again"}\n')
    code = main(["estimate", "--model", "llama-3.2-1b", "--workload", str(workload)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"Using refreshed prices from {path}" in out
