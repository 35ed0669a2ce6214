"""Regions (issue 16, item 10): an unknown region is a typed error with a suggestion, and a
known region where a route is not offered lists that route in ``skipped`` with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import llamaroute
from llamaroute import ConfigurationError
from llamaroute.catalog import AWS_REGIONS, Catalog
from llamaroute.money import estimate_workload

from .test_cli import run


def test_an_unknown_region_is_a_configuration_error_with_a_suggestion() -> None:
    with pytest.raises(
        ConfigurationError, match=r"unknown region 'us-est-1'; did you mean us-east-1"
    ):
        llamaroute.estimate("llama-3.2-90b-vision", "hi", region="us-est-1")
    with pytest.raises(ConfigurationError, match="did you mean eu-west-1"):
        estimate_workload(['{"prompt": "hi"}'], "llama-3.2-3b", region="eu-west1")
    with pytest.raises(ConfigurationError, match="not ''"):
        Catalog.builtin().check_region("")


def test_every_region_a_route_names_is_known() -> None:
    catalog = Catalog.builtin()
    named = {region for spec in catalog.models() for route in spec.routes
             for region in (*route.regions, *route.destination_regions)}  # fmt: skip
    assert named
    assert named <= AWS_REGIONS
    assert catalog.check_region("ap-south-1") == "ap-south-1"


def test_a_region_from_the_users_catalog_counts_as_known(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[[routes]]\nprovider = "bedrock"\nmodel = "llama-3.2-1b"\n'
                    'model_id = "xx.meta.llama3-2-1b-instruct-v1:0"\n'
                    'regions = ["xx-new-1"]\n')  # fmt: skip
    catalog = llamaroute.load_catalog(path)
    found = llamaroute.estimate("llama-3.2-1b", "hi", region="xx-new-1", catalog=catalog)
    assert "bedrock:xx.meta.llama3-2-1b-instruct-v1:0" in [item.pinned for item in found]


def test_a_known_region_without_the_route_lists_it_as_skipped_with_the_reason() -> None:
    found = llamaroute.estimate("llama-3.2-90b-vision", "hi", region="eu-west-1")
    assert {item.provider for item in found} == {"openrouter", "ollama"}
    [skipped] = found.skipped  # type: ignore[attr-defined]
    assert (skipped.provider, skipped.model_id) == ("bedrock", "us.meta.llama3-2-90b-instruct-v1:0")
    assert skipped.reason == (
        "llama-3.2-90b-vision on bedrock is offered only through us. profiles: us-east-1, "
        "us-east-2, us-west-2; not in eu-west-1"
    )


def test_a_route_another_profile_replaces_in_the_region_says_which() -> None:
    found = llamaroute.estimate("llama-3.2-3b", "hi", region="eu-west-1", providers="bedrock")
    assert [item.model_id for item in found] == ["eu.meta.llama3-2-3b-instruct-v1:0"]
    [skipped] = found.skipped  # type: ignore[attr-defined]
    assert skipped.model_id == "us.meta.llama3-2-3b-instruct-v1:0"
    assert "bedrock:eu.meta.llama3-2-3b-instruct-v1:0 serves eu-west-1" in skipped.reason


def test_no_region_skips_nothing() -> None:
    assert llamaroute.estimate("llama-3.2-3b", "hi").skipped == ()  # type: ignore[attr-defined]


def test_the_command_line_refuses_an_unknown_region_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "estimate", "--model", "llama-3.2-90b-vision", "--prompt", "hi",
                         "--region", "us-est-1")  # fmt: skip
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "unknown region 'us-est-1'; did you mean us-east-1" in err


def test_the_command_line_says_why_bedrock_is_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.2-90b-vision", "--prompt", "hi",
                       "--region", "eu-west-1")  # fmt: skip
    assert code == 0
    assert "offered only through us. profiles: us-east-1, us-east-2, us-west-2" in out
    code, out, _ = run(capsys, "estimate", "--model", "llama-3.2-90b-vision", "--prompt", "hi",
                       "--region", "eu-west-1", "--json")  # fmt: skip
    assert [item["provider"] for item in json.loads(out)["skipped"]] == ["bedrock"]
