"""The shipped prices against an independent, maintained price dataset (genai-prices), and the
provenance every row must carry: a source, and the date that source was read.

genai-prices (pydantic/genai-prices on PyPI, in the dev extra) tracks OpenRouter's /models and
the AWS price list. For every shipped row for which it has a price on the date our source was
read, the amounts must agree exactly. Where it has none (the 90B ``:free`` slug, Ollama), or
where it does not model the price at all (Bedrock's per-region EU prices: it gives an ``eu.``
profile the US price), the row is checked against its own cited source instead, and this test
says which rows those are, so that the list cannot grow unnoticed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import genai_prices
import pytest

from llamaroute import Catalog, Price

#: llamaroute provider -> genai-prices provider id.
PROVIDER_IDS = {"openrouter": "openrouter", "bedrock": "aws"}
MILLION = 1_000_000


def shipped_rows() -> list[tuple[str, str, str | None, Price]]:
    """(provider, model_id, region, price) for every route and regional price shipped."""
    catalog = Catalog.builtin()
    return [
        (route.provider, route.model_id, region, price)
        for spec in catalog.models()
        for route in spec.routes
        for region, price in catalog.regional_prices(route).items()
    ]


def genai_price(provider: str, model_id: str, on: date) -> tuple[Decimal, Decimal] | None:
    """genai-prices' (input, output) USD per million tokens on ``on``, or ``None``."""
    provider_id = PROVIDER_IDS.get(provider)
    if provider_id is None:
        return None
    usage = genai_prices.Usage(input_tokens=MILLION, output_tokens=MILLION)
    when = datetime(on.year, on.month, on.day, 12, tzinfo=UTC)
    try:
        found = genai_prices.calc_price(
            usage, model_id, provider_id=provider_id, genai_request_timestamp=when
        )
    except LookupError:
        return None
    return Decimal(found.input_price), Decimal(found.output_price)


def test_genai_prices_is_the_version_cited_in_the_data() -> None:
    # The TOML cites "genai-prices 0.2.5"; a newer dataset may carry newer prices, and then
    # this test is the reminder to re-read it and move the rows' `checked` dates.
    assert genai_prices.__version__ == "0.2.5"


def test_every_shipped_price_agrees_with_genai_prices_where_it_has_one() -> None:
    compared, regional = [], []
    for provider, model_id, region, price in shipped_rows():
        theirs = genai_price(provider, model_id, price.checked)
        if theirs is None:
            continue
        if region is not None and region.startswith("eu-"):
            # genai-prices has one Bedrock price per model (the US one) and gives it to the
            # eu. profiles too: it does not model source-region prices, so it is no witness
            # for these rows.
            assert theirs == genai_price(
                "bedrock", model_id.replace("eu.", "us.", 1), price.checked
            )
            regional.append(f"{model_id} {region}")
            continue
        ours = (price.input_per_mtok, price.output_per_mtok)
        assert ours == theirs, (
            f"{provider}:{model_id} ({region}): ours {ours}, genai-prices {theirs}"
        )
        compared.append(f"{provider}:{model_id}")
    # 4 paid + 3 free OpenRouter slugs, 4 Bedrock US profiles.
    assert len(set(compared)) == 11, compared
    assert len(regional) == 6, regional


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("meta-llama/llama-3.2-1b-instruct", ("0.027", "0.201")),
        ("meta-llama/llama-3.2-3b-instruct", ("0.0509", "0.335")),
        ("meta-llama/llama-3.2-11b-vision-instruct", ("0.049", "0.049")),
        ("meta-llama/llama-3.2-90b-vision-instruct", ("0.9", "0.9")),
    ],
)
def test_openrouter_prices_are_those_since_the_2026_10_19_change(
    model_id: str, expected: tuple[str, str]
) -> None:
    route = Catalog.builtin().get(model_id).routes_for("openrouter")[0]
    price = Catalog.builtin().price(route)
    assert price is not None
    assert (price.input_per_mtok, price.output_per_mtok) == tuple(map(Decimal, expected))
    # Before the change genai-prices had the old figures: the dataset really is dated.
    if model_id.endswith(("1b-instruct", "3b-instruct")):
        assert genai_price("openrouter", model_id, date(2026, 10, 18)) != price_pair(price)


def price_pair(price: Price) -> tuple[Decimal, Decimal]:
    return price.input_per_mtok, price.output_per_mtok


def test_every_row_names_its_source_and_the_date_it_was_read() -> None:
    rows = shipped_rows()
    assert len(rows) >= 20
    for provider, model_id, _, price in rows:
        # A web page, or a named dataset file (with its version where it has one).
        markers = ("https://", "genai-prices 0.2.5 genai_prices/data.py", "litellm model_prices")
        assert any(m in price.source for m in markers), (provider, model_id, price.source)
        # `checked` is the date the source was read: never in the future of the data.
        assert date(2024, 9, 25) <= price.checked <= date(2026, 12, 7), (provider, model_id)


def test_the_90b_image_price_is_recorded_with_its_alternative() -> None:
    route = (
        Catalog.builtin().resolve("openrouter:meta-llama/llama-3.2-90b-vision-instruct").routes[0]
    )
    price = Catalog.builtin().price(route)
    assert price is not None
    assert price.image == Decimal("0.005146")
    assert "0.0005058" in price.notes
    assert "unconfirmed" in price.notes


def test_bedrock_batch_is_not_offered_for_llama_3_2() -> None:
    # AWS's table lists batch as N/A for Llama 3.2: no batch price, rather than a made-up half.
    catalog = Catalog.builtin()
    bedrock = [p for _, _, _, p in shipped_rows() if p.provider == "bedrock"]
    assert bedrock
    assert all(p.batch_input_per_mtok is None for p in bedrock)
    # The field exists and takes a pair: a user file can set it where AWS offers batch.
    half = bedrock[0].model_copy(
        update={"batch_input_per_mtok": Decimal("0.05"), "batch_output_per_mtok": Decimal("0.05")}
    )
    assert half.batch_input_per_mtok == Decimal("0.05")
    assert catalog.price  # (the catalog is usable after the lookups above)


def test_a_half_batch_price_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_input_per_mtok and batch_output_per_mtok"):
        Price(
            provider="bedrock", input_per_mtok="1", output_per_mtok="1",
            batch_input_per_mtok="0.5", source="x", checked=date(2026, 12, 7),
        )  # fmt: skip


def test_stale_thresholds_per_provider() -> None:
    by_provider = {p.provider: p.stale_after_days for _, _, _, p in shipped_rows()}
    assert by_provider == {"openrouter": 30, "bedrock": 90, "ollama": None}
