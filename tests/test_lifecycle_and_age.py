"""Route lifecycle (a confirmed end of life is skipped before sending, an unconfirmed one warns
once), prices by source region (Bedrock's eu. profiles), and the age of the price used
(on estimates, responses and the CLI; a price older than its provider's threshold warns once).

The catalog's clock is injected (``Catalog.with_clock``), so the dates here do not depend on the
day the tests run.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from llamaroute import (
    Catalog,
    Client,
    RetryPolicy,
    UnsupportedFeatureError,
    estimate,
    load_catalog,
)
from llamaroute.providers import BedrockProvider, OllamaProvider, OpenRouterProvider
from llamaroute.testing import FakeBedrock, FakeOllama, FakeOpenRouter, Step

from .conftest import AWS_KEYS, CANARY_KEY
from .test_cli import run

NO_SLEEP = RetryPolicy(sleep=lambda seconds: None)
READ = date(2026, 12, 7)  # the date the shipped OpenRouter and Bedrock sources were read
EU_3B = "bedrock:eu.meta.llama3-2-3b-instruct-v1:0"
US_3B = "bedrock:us.meta.llama3-2-3b-instruct-v1:0"


def on(day: date, catalog: Catalog | None = None) -> Catalog:
    return (catalog or Catalog.builtin()).with_clock(lambda: day)


def route(catalog: Catalog, pinned: str):  # type: ignore[no-untyped-def]
    return catalog.resolve(pinned).routes[0]


def confirmed_eol(tmp_path: Path) -> Catalog:
    """The shipped catalog plus a file (as a lifecycle refresh would write) that confirms the
    US 3B profile's end of life: the date is no longer listed as unconfirmed."""
    path = tmp_path / "lifecycle.toml"
    path.write_text(
        "[[routes]]\nprovider = 'bedrock'\nmodel_id = 'us.meta.llama3-2-3b-instruct-v1:0'\n"
        "unconfirmed = ['max_output_tokens']\nend_of_life = 2026-07-07\n"
        "lifecycle_source = 'ListFoundationModels modelLifecycle'\n"
    )
    return on(READ, load_catalog(path))


def bedrock(fake: FakeBedrock, region: str = "us-east-1") -> BedrockProvider:
    return BedrockProvider(region=region, endpoint_url=fake.url, **AWS_KEYS)


# --- lifecycle ----------------------------------------------------------------------------------


def test_the_shipped_bedrock_end_of_life_is_recorded_as_unconfirmed() -> None:
    catalog = on(READ)
    for spec in catalog.models():
        for each in spec.routes_for("bedrock"):
            assert each.end_of_life == date(2026, 7, 7)
            assert "end_of_life" in each.unconfirmed
            assert each.lifecycle_source
            # Unconfirmed: not refused, whatever the date.
            assert catalog.lifecycle_refusal(each) is None
        for each in spec.routes_for("openrouter") + spec.routes_for("ollama"):
            assert each.lifecycle == "active"
            assert each.end_of_life is None


def test_a_confirmed_end_of_life_is_skipped_before_sending_with_the_date(
    tmp_path: Path,
) -> None:
    catalog = confirmed_eol(tmp_path)
    ended = route(catalog, US_3B)
    assert catalog.lifecycle_refusal(ended) == (
        "reached its end of life on 2026-07-07 (ListFoundationModels modelLifecycle); "
        "requests to it fail"
    )
    # The day before, the same route is still served.
    assert on(date(2026, 7, 6), catalog).lifecycle_refusal(ended) is None
    with FakeBedrock() as fake:
        with Client(providers=[bedrock(fake)], catalog=catalog, retries=NO_SLEEP) as client:
            with pytest.raises(UnsupportedFeatureError, match="end of life on 2026-07-07"):
                client.chat("llama-3.2-3b", "hi")
            estimates = client.estimate("llama-3.2-3b", "hi")
        assert fake.requests == []  # nothing was sent
    assert list(estimates) == []
    assert [s.reason for s in estimates.skipped] == [catalog.lifecycle_refusal(ended)]


def test_a_confirmed_end_of_life_falls_back_to_the_next_provider(tmp_path: Path) -> None:
    catalog = confirmed_eol(tmp_path)
    with FakeBedrock() as aws, FakeOllama() as ollama:
        providers = [bedrock(aws), OllamaProvider(host=ollama.url)]
        with Client(providers=providers, catalog=catalog, retries=NO_SLEEP) as client:
            reply = client.chat("llama-3.2-3b", "hi")
        assert aws.requests == []
    assert reply.provider == "ollama"
    with pytest.raises(UnsupportedFeatureError, match="end of life on 2026-07-07"):
        estimate(US_3B, "hi", catalog=catalog)


def test_an_eol_status_is_skipped_even_without_a_date(tmp_path: Path) -> None:
    path = tmp_path / "eol.toml"
    path.write_text(
        "[[routes]]\nprovider = 'bedrock'\nmodel_id = 'us.meta.llama3-2-1b-instruct-v1:0'\n"
        "lifecycle = 'eol'\nend_of_life = 2027-01-01\n"
    )
    catalog = on(READ, load_catalog(path))
    assert catalog.lifecycle_refusal(route(catalog, "bedrock:us.meta.llama3-2-1b-instruct-v1:0"))


def test_an_unconfirmed_end_of_life_is_tried_and_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    catalog = on(READ)
    with FakeBedrock() as fake, caplog.at_level(logging.WARNING, logger="llamaroute"):
        fake.script(Step.reply("one"), Step.reply("two"))
        with Client(providers=[bedrock(fake)], catalog=catalog, retries=NO_SLEEP) as client:
            assert client.chat("llama-3.2-3b", "hi").text == "one"
            assert client.chat("llama-3.2-3b", "hi").text == "two"
    warned = [r.getMessage() for r in caplog.records if "end of life" in r.getMessage()]
    assert warned == [
        f"{US_3B} may have reached its end of life on 2026-07-07 (unconfirmed); run "
        "`llamaroute prices refresh` with AWS credentials to read the lifecycle"
    ]


def test_no_warning_before_an_unconfirmed_end_of_life(caplog: pytest.LogCaptureFixture) -> None:
    catalog = on(date(2026, 7, 6))
    with (
        FakeBedrock() as fake,
        caplog.at_level(logging.WARNING, logger="llamaroute"),
        Client(providers=[bedrock(fake)], catalog=catalog, retries=NO_SLEEP) as client,
    ):
        reply = client.chat("llama-3.2-3b", "hi")
    assert reply.provider == "bedrock"
    assert not [r for r in caplog.records if "end of life" in r.getMessage()]


def test_models_shows_the_lifecycle(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models", "llama-3.2-90b-vision")
    assert code == 0
    assert "lifecycle" in out.splitlines()[1]
    bedrock_row = next(line for line in out.splitlines() if line.startswith("bedrock"))
    # Past the unconfirmed date: "eol 2026-07-07?"; before it: "legacy?, eol 2026-07-07?".
    assert "eol 2026-07-07?" in bedrock_row
    assert "active" in next(line for line in out.splitlines() if line.startswith("openrouter"))


def test_lifecycle_text() -> None:
    each = route(Catalog.builtin(), US_3B)
    assert each.lifecycle_text(date(2026, 7, 6)) == "legacy, eol 2026-07-07?"
    assert each.lifecycle_text(READ) == "eol 2026-07-07?"
    confirmed = each.model_copy(update={"unconfirmed": ()})
    assert confirmed.lifecycle_text(READ) == "eol 2026-07-07"


# --- prices by source region ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "per_mtok"),
    [("eu-central-1", "0.19"), ("eu-west-1", "0.17"), ("eu-west-3", "0.20"), (None, "0.20")],
)
def test_an_eu_profile_is_priced_at_the_source_region(region: str | None, per_mtok: str) -> None:
    # None: the region is unknown, so the highest regional price (eu-west-3's) is used.
    catalog = Catalog.builtin()
    price = catalog.price(route(catalog, EU_3B), region)
    assert price is not None
    assert (price.input_per_mtok, price.output_per_mtok) == (Decimal(per_mtok),) * 2


def test_a_us_profile_has_one_price_in_every_region() -> None:
    catalog = Catalog.builtin()
    us = route(catalog, US_3B)
    prices = {catalog.price(us, region) for region in (None, "us-east-1", "us-west-2")}
    assert len(prices) == 1


@pytest.mark.parametrize(("region", "total"), [("eu-west-1", "0.34"), ("eu-west-3", "0.40")])
def test_a_call_from_an_eu_region_costs_that_regions_price(region: str, total: str) -> None:
    with FakeBedrock() as fake:
        fake.script(Step.reply("ok", usage=(1_000_000, 1_000_000)))
        with Client(providers=[bedrock(fake, region)], retries=NO_SLEEP) as client:
            reply = client.chat("llama-3.2-3b", "hi")
            estimates = client.estimate("llama-3.2-3b", "hi")
    assert reply.provider_model_id == "eu.meta.llama3-2-3b-instruct-v1:0"
    assert reply.cost is not None
    assert reply.cost.total == Decimal(total)
    assert estimates[0].price is not None
    assert estimates[0].price.input_per_mtok == Decimal(total) / 2


def test_estimate_with_a_region_uses_that_regions_price() -> None:
    found = estimate("llama-3.2-1b", "hi", providers="bedrock", region="eu-west-1")
    assert [(e.model_id, e.price.input_per_mtok if e.price else None) for e in found] == [
        ("eu.meta.llama3-2-1b-instruct-v1:0", Decimal("0.11"))
    ]


def test_prices_lists_one_row_per_regional_price(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "prices", "llama-3.2-1b")
    assert code == 0
    eu = [line for line in out.splitlines() if "eu.meta.llama3-2-1b" in line]
    assert [line.split()[3] for line in eu] == ["eu-central-1", "eu-west-1", "eu-west-3"]
    assert "batch in/out $/M" in out


# --- the price's age ------------------------------------------------------------------------


def test_estimates_carry_the_price_age_and_staleness() -> None:
    later = on(date(2027, 1, 20))  # 44 days after the sources were read
    found = {e.provider: e for e in estimate("llama-3.2-3b", "hi", catalog=later)}
    assert found["openrouter"].price_checked == READ
    assert (found["openrouter"].price_age_days, found["openrouter"].price_stale) == (44, True)
    # Bedrock's threshold is 90 days; Ollama (local, free) has none.
    assert (found["bedrock"].price_age_days, found["bedrock"].price_stale) == (44, False)
    assert found["ollama"].price_stale is False
    fresh = {e.provider: e for e in estimate("llama-3.2-3b", "hi", catalog=on(READ))}
    assert fresh["openrouter"].price_age_days == 0
    assert not fresh["openrouter"].price_stale


def test_a_response_carries_the_price_age_and_a_stale_price_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    later = on(date(2027, 1, 20))
    with FakeOpenRouter() as fake, caplog.at_level(logging.WARNING, logger="llamaroute"):
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        with Client(providers=[provider], catalog=later, retries=NO_SLEEP) as client:
            replies = [client.chat("llama-3.2-3b", "hi") for _ in range(3)]
    assert {(r.price_checked, r.price_age_days) for r in replies} == {(READ, 44)}
    stale = [r.getMessage() for r in caplog.records if "days ago" in r.getMessage()]
    assert len(stale) == 1
    assert "openrouter meta-llama/llama-3.2-3b-instruct was read 44 days ago" in stale[0]
    assert "more than the 30 days" in stale[0]


def test_a_fresh_price_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    with FakeOpenRouter() as fake, caplog.at_level(logging.WARNING, logger="llamaroute"):
        provider = OpenRouterProvider(api_key=CANARY_KEY, base_url=fake.base_url)
        with Client(providers=[provider], catalog=on(READ), retries=NO_SLEEP) as client:
            reply = client.chat("llama-3.2-3b", "hi")
    assert reply.price_age_days == 0
    assert not [r for r in caplog.records if "days ago" in r.getMessage()]


def test_each_catalog_warns_on_its_own() -> None:
    # The "already warned" set lives on the catalog, not in the module.
    first, second = on(date(2027, 1, 20)), on(date(2027, 1, 20))
    each = route(first, "openrouter:meta-llama/llama-3.2-3b-instruct")
    price = first.price(each)
    key = ("stale", "openrouter", "x")
    assert first.warn_once(key, "x")
    assert not first.warn_once(key, "x")
    assert second.warn_once(key, "x")
    assert price is not None
    assert price.is_stale(first.today())


def test_cli_shows_ages_and_flags_stale_rows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "prices", "llama-3.2-90b-vision")
    assert code == 0
    free = next(
        line
        for line in out.splitlines()
        if line.split()[2:3] == ["meta-llama/llama-3.2-90b-vision-instruct:free"]
    )
    # Read 2026-08-22, more than OpenRouter's 30 days ago.
    assert "2026-08-22" in free
    assert " !" in free
    assert "older than their provider's threshold" in err
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.2-1b", "--prompt", "hi")
    assert code == 0
    assert "price age" in out
