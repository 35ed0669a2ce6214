"""Prices: exact Decimal money, the packaged price table, user overrides, cost after a call."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

import llamaroute
from llamaroute import Catalog, ConfigurationError, Cost, Price, Usage
from llamaroute.money import cost_from_usage, price_for

BEDROCK_US = {
    "llama-3.2-1b": ("us.meta.llama3-2-1b-instruct-v1:0", "0.10"),
    "llama-3.2-3b": ("us.meta.llama3-2-3b-instruct-v1:0", "0.15"),
    "llama-3.2-11b-vision": ("us.meta.llama3-2-11b-instruct-v1:0", "0.16"),
    "llama-3.2-90b-vision": ("us.meta.llama3-2-90b-instruct-v1:0", "0.72"),
}


def _route(pinned: str) -> llamaroute.Route:
    resolution = Catalog.builtin().resolve(pinned)
    assert resolution.pinned is not None
    return resolution.pinned


def _price(**fields: object) -> Price:
    base: dict[str, object] = {
        "provider": "bedrock",
        "input_per_mtok": "1",
        "output_per_mtok": "2",
        "source": "test",
        "checked": date(2026, 1, 1),
    }
    return Price.model_validate({**base, **fields})


@pytest.mark.parametrize(("key", "expected"), BEDROCK_US.items())
def test_bedrock_us_on_demand_prices(key: str, expected: tuple[str, str]) -> None:
    model_id, amount = expected
    price = price_for(_route(f"bedrock:{model_id}"))
    assert price is not None
    assert price.input_per_mtok == Decimal(amount)
    assert price.output_per_mtok == Decimal(amount)
    assert isinstance(price.input_per_mtok, Decimal)
    # Read from the maintained genai-prices dataset, which carries AWS's US on-demand table.
    assert "genai-prices 0.2.5" in price.source
    assert "https://aws.amazon.com/bedrock/pricing/" in price.source
    assert price.checked == date(2026, 12, 7)
    assert price.regions == ("us-east-1", "us-east-2", "us-west-2")


def test_the_judged_figure_is_exactly_one_forty_four() -> None:
    price = price_for(_route("bedrock:us.meta.llama3-2-90b-instruct-v1:0"))
    cost = cost_from_usage(Usage(input_tokens=1_000_000, output_tokens=1_000_000), price)
    assert cost is not None
    assert cost.total == Decimal("1.44")
    assert str(cost.total) == "1.44"
    assert (cost.input, cost.output, cost.source) == (
        Decimal("0.72"),
        Decimal("0.72"),
        "price_table",
    )


def test_stale_launch_prices_are_not_used() -> None:
    for model_id in ("us.meta.llama3-2-11b-instruct-v1:0", "us.meta.llama3-2-90b-instruct-v1:0"):
        price = price_for(_route(f"bedrock:{model_id}"))
        assert price is not None
        assert price.input_per_mtok not in (Decimal("0.35"), Decimal("2.00"))


@pytest.mark.parametrize(
    "pinned",
    ["bedrock:eu.meta.llama3-2-1b-instruct-v1:0", "bedrock:eu.meta.llama3-2-3b-instruct-v1:0"],
)
def test_eu_profiles_are_priced_per_source_region(pinned: str) -> None:
    # Cross-region profiles bill at the source region's price: three EU prices per profile,
    # and with the region unknown the highest (eu-west-3's), so that nothing is guessed low.
    route = _route(pinned)
    catalog = Catalog.builtin()
    by_region = {
        region: price.input_per_mtok for region, price in catalog.regional_prices(route).items()
    }
    size = "1b" if "3-2-1b" in pinned else "3b"
    expected = {"1b": ("0.13", "0.11", "0.13"), "3b": ("0.19", "0.17", "0.20")}[size]
    assert by_region == dict(
        zip(("eu-central-1", "eu-west-1", "eu-west-3"), map(Decimal, expected), strict=True)
    )
    highest = price_for(route)
    assert highest is not None
    assert highest.input_per_mtok == max(by_region.values())
    west = catalog.price(route, "eu-west-1")
    cost = cost_from_usage(Usage(input_tokens=10, output_tokens=10), west)
    assert cost is not None
    assert cost.total == Decimal(expected[1]) * 20 / 1_000_000


def test_every_ollama_route_is_explicitly_free() -> None:
    for spec in llamaroute.models():
        price = price_for(spec.route("ollama"))
        assert price is not None, spec.key
        assert price.input_per_mtok == 0
        assert price.output_per_mtok == 0


def test_openrouter_prices_are_dated_and_free_variants_are_zero() -> None:
    catalog = Catalog.builtin()
    for spec in catalog.models():
        for route in spec.routes_for("openrouter", include_opt_in=True):
            price = catalog.price(route)
            assert price is not None, route.pinned
            assert price.stale_after_days == 30
            assert "https://openrouter.ai/" in price.source
            if route.variant == "free":
                assert (price.input_per_mtok, price.output_per_mtok) == (0, 0)
            else:
                assert price.input_per_mtok > 0
    ninety = catalog.price(_route("openrouter:meta-llama/llama-3.2-90b-vision-instruct"))
    assert ninety is not None
    # genai-prices' figure; the 0.35 / 0.40 (DeepInfra upstream) snapshot is no longer shipped.
    assert (ninety.input_per_mtok, ninety.output_per_mtok) == (Decimal("0.9"), Decimal("0.9"))
    assert ninety.checked == date(2026, 12, 7)


def test_cost_from_usage_is_exact_and_adds_the_image_price() -> None:
    price = _price(input_per_mtok="0.35", output_per_mtok="0.40", image="0.005146")
    cost = cost_from_usage(Usage(input_tokens=1234, output_tokens=7), price, images=1)
    assert cost == Cost(
        input=Decimal("0.0004319") + Decimal("0.005146"),
        output=Decimal("0.0000028"),
        total=Decimal("0.0055807"),
        source="price_table",
        price_source=price.source,
        price_checked=price.checked,
        table=Decimal("0.0055807"),  # a table cost's table figure is its total
    )


def test_unknown_price_is_none_not_zero() -> None:
    assert cost_from_usage(Usage(input_tokens=5, output_tokens=5), None) is None


@pytest.mark.parametrize("bad", [0.72, float("nan"), True, "-1", "abc", "Infinity"])
def test_price_amounts_must_be_exact_non_negative_decimals(bad: object) -> None:
    with pytest.raises(ValueError, match="input_per_mtok"):
        _price(input_per_mtok=bad)


def test_float_amounts_are_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="not floats"):
        _price(output_per_mtok=0.1)


def test_integer_and_string_amounts_are_exact() -> None:
    price = _price(input_per_mtok=3, output_per_mtok="0.000001")
    assert price.input_per_mtok == Decimal(3)
    assert price.output_per_mtok == Decimal("0.000001")


def _user_catalog(tmp_path: Path, text: str) -> Catalog:
    mine = tmp_path / "mine.toml"
    mine.write_text(text)
    return llamaroute.load_catalog(mine)


def test_a_user_file_sets_a_local_cost_for_ollama(tmp_path: Path) -> None:
    mine = tmp_path / "local.toml"
    mine.write_text('[[prices]]\nprovider = "ollama"\ninput_per_mtok = "0.02"\n'
                    'output_per_mtok = "0.06"\n')  # fmt: skip
    catalog = llamaroute.load_catalog(mine)
    price = price_for(catalog.get("llama-3.2-3b").route("ollama"), catalog)
    assert price is not None
    assert (price.input_per_mtok, price.output_per_mtok) == (Decimal("0.02"), Decimal("0.06"))
    assert price.source == f"file:{mine}"
    # The built-in catalog is untouched.
    builtin = price_for(llamaroute.get_model("llama-3.2-3b").route("ollama"))
    assert builtin is not None
    assert builtin.input_per_mtok == 0


def test_a_custom_ollama_tag_is_priced_by_the_provider_wide_entry(tmp_path: Path) -> None:
    catalog = _user_catalog(tmp_path, '[[routes]]\nprovider = "ollama"\nmodel = "llama-3.2-3b"\n'
                                      'model_id = "llama3.2:3b-instruct-q8_0"\n')  # fmt: skip
    price = catalog.price(catalog.resolve("ollama:llama3.2:3b-instruct-q8_0").routes[0])
    assert price is not None
    assert price.output_per_mtok == 0


def test_a_model_id_price_beats_a_provider_wide_one(tmp_path: Path) -> None:
    catalog = _user_catalog(tmp_path, '[[prices]]\nprovider = "ollama"\nmodel_id = "llama3.2:1b"\n'
                                      'input_per_mtok = "1"\noutput_per_mtok = "1"\n')  # fmt: skip
    one = catalog.price(catalog.get("llama-3.2-1b").route("ollama"))
    three = catalog.price(catalog.get("llama-3.2-3b").route("ollama"))
    assert one is not None
    assert three is not None
    assert (one.input_per_mtok, three.input_per_mtok) == (Decimal(1), Decimal(0))


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (
            'provider = "bedrock"\nmodel_id = "us.meta.nope"\ninput_per_mtok = "1"',
            "matches no route",
        ),
        ('provider = "ollama"\ninput_per_mtok = 0.02', "not floats"),
    ],
)
def test_a_bad_user_price_names_the_file(tmp_path: Path, entry: str, problem: str) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text(f'[[prices]]\n{entry}\noutput_per_mtok = "1"\n')
    with pytest.raises(ConfigurationError, match=rf"mine\.toml.*{problem}"):
        llamaroute.load_catalog(mine)


def test_a_regional_price_only_covers_routes_in_those_regions(tmp_path: Path) -> None:
    catalog = _user_catalog(
        tmp_path,
        '[[prices]]\nprovider = "bedrock"\nmodel_id = "eu.meta.llama3-2-1b-instruct-v1:0"\n'
        'regions = ["eu-west-1"]\ninput_per_mtok = "0.09"\noutput_per_mtok = "0.09"\n',
    )
    spec = catalog.get("llama-3.2-1b")
    eu_route = spec.route("bedrock", region="eu-west-1")
    eu = catalog.price(eu_route, "eu-west-1")
    central = catalog.price(eu_route, "eu-central-1")
    us = catalog.price(spec.route("bedrock", region="us-east-1"), "us-east-1")
    assert eu is not None
    assert central is not None
    assert us is not None
    # The user's entry replaces the shipped eu-west-1 price only.
    assert (eu.input_per_mtok, central.input_per_mtok, us.input_per_mtok) == (
        Decimal("0.09"), Decimal("0.13"), Decimal("0.10"),
    )  # fmt: skip


def test_price_lookup_is_by_route_identity() -> None:
    catalog = Catalog.builtin()
    route = catalog.get("llama-3.2-90b-vision").route("bedrock", region="us-east-1")
    assert catalog.price(route) is catalog.price(route)
    assert catalog.price(route.model_copy(update={"model_id": "unknown"})) is None
