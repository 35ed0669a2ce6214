"""Catalog rules: keys, aliases, every provider's IDs, regions, pinned forms, user overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

import llamaroute
from llamaroute import Catalog, ConfigurationError, UnknownModelError, UnsupportedFeatureError

KEYS = ["llama-3.2-1b", "llama-3.2-3b", "llama-3.2-11b-vision", "llama-3.2-90b-vision"]

OPENROUTER = {
    "llama-3.2-1b": "meta-llama/llama-3.2-1b-instruct",
    "llama-3.2-3b": "meta-llama/llama-3.2-3b-instruct",
    "llama-3.2-11b-vision": "meta-llama/llama-3.2-11b-vision-instruct",
    "llama-3.2-90b-vision": "meta-llama/llama-3.2-90b-vision-instruct",
}
BEDROCK_US = {
    "llama-3.2-1b": "us.meta.llama3-2-1b-instruct-v1:0",
    "llama-3.2-3b": "us.meta.llama3-2-3b-instruct-v1:0",
    "llama-3.2-11b-vision": "us.meta.llama3-2-11b-instruct-v1:0",
    "llama-3.2-90b-vision": "us.meta.llama3-2-90b-instruct-v1:0",
}
OLLAMA = {
    "llama-3.2-1b": "llama3.2:1b",
    "llama-3.2-3b": "llama3.2:3b",
    "llama-3.2-11b-vision": "llama3.2-vision:11b",
    "llama-3.2-90b-vision": "llama3.2-vision:90b",
}
US_REGIONS = ["us-east-1", "us-east-2", "us-west-2"]
EU_REGIONS = ["eu-central-1", "eu-west-1", "eu-west-3"]


def test_the_four_keys_in_order() -> None:
    assert [spec.key for spec in llamaroute.models()] == KEYS


@pytest.mark.parametrize(
    ("key", "parameters", "vision"),
    [
        ("llama-3.2-1b", 1_230_000_000, False),
        ("llama-3.2-3b", 3_210_000_000, False),
        ("llama-3.2-11b-vision", 10_600_000_000, True),
        ("llama-3.2-90b-vision", 88_800_000_000, True),
    ],
)
def test_model_facts(key: str, parameters: int, vision: bool) -> None:
    spec = llamaroute.get_model(key)
    assert spec.parameters == parameters
    assert spec.vision is vision
    assert spec.context_window == 131_072
    assert spec.knowledge_cutoff == "2023-12"
    assert set(spec.languages) == {"en", "de", "fr", "it", "pt", "hi", "es", "th"}
    assert ("image" in spec.input_modalities) is vision
    assert spec.source.startswith("https://")


@pytest.mark.parametrize("key", KEYS)
def test_every_provider_native_id(key: str) -> None:
    spec = llamaroute.get_model(key)
    assert spec.route("openrouter").model_id == OPENROUTER[key]
    assert spec.route("ollama").model_id == OLLAMA[key]
    for region in US_REGIONS:
        assert spec.route("bedrock", region=region).model_id == BEDROCK_US[key]


@pytest.mark.parametrize("key", ["llama-3.2-1b", "llama-3.2-3b"])
@pytest.mark.parametrize("region", EU_REGIONS)
def test_bedrock_eu_profiles_for_text_models(key: str, region: str) -> None:
    route = llamaroute.get_model(key).route("bedrock", region=region)
    assert route.model_id == BEDROCK_US[key].replace("us.", "eu.", 1)
    assert route.geography == "eu"


@pytest.mark.parametrize("key", ["llama-3.2-11b-vision", "llama-3.2-90b-vision"])
@pytest.mark.parametrize("region", EU_REGIONS)
def test_bedrock_vision_in_eu_is_a_clear_error(key: str, region: str) -> None:
    with pytest.raises(UnsupportedFeatureError) as caught:
        llamaroute.get_model(key).route("bedrock", region=region)
    message = str(caught.value)
    assert region in message
    assert BEDROCK_US[key] in message
    assert "us-east-1" in message


def test_bedrock_region_with_no_profile_at_all() -> None:
    with pytest.raises(UnsupportedFeatureError, match="ap-southeast-2"):
        llamaroute.get_model("llama-3.2-3b").route("bedrock", region="ap-southeast-2")


def test_bedrock_bare_ids_are_recorded_but_never_the_route_id() -> None:
    for spec in llamaroute.models():
        for route in spec.routes_for("bedrock"):
            assert route.foundation_model_id is not None
            assert route.foundation_model_id.startswith("meta.llama3-2-")
            assert route.model_id.startswith(("us.", "eu."))
            assert route.model_id.endswith(route.foundation_model_id)


@pytest.mark.parametrize(
    "name", ["meta.llama3-2-3b-instruct-v1:0", "bedrock:meta.llama3-2-3b-instruct-v1:0"]
)
def test_bare_bedrock_id_is_refused_with_the_profile_to_use(name: str) -> None:
    with pytest.raises(UnknownModelError) as caught:
        llamaroute.get_model(name)
    assert "on demand" in str(caught.value)
    assert "bedrock:us.meta.llama3-2-3b-instruct-v1:0" in caught.value.suggestions
    assert "llama-3.2-3b" in caught.value.suggestions


@pytest.mark.parametrize("key", KEYS)
def test_free_variants_are_separate_opt_in_routes(key: str) -> None:
    spec = llamaroute.get_model(key)
    default = spec.routes_for("openrouter")
    every = spec.routes_for("openrouter", include_opt_in=True)
    assert [route.model_id for route in default] == [OPENROUTER[key]]
    free = [route for route in every if route.variant == "free"]
    assert [route.model_id for route in free] == [OPENROUTER[key] + ":free"]
    assert free[0].opt_in
    assert spec.route("openrouter", variant="free").model_id == OPENROUTER[key] + ":free"
    # A key resolves to its default routes; the free one is only there when asked for.
    assert free[0] not in Catalog.builtin().resolve(key).routes
    assert free[0] in Catalog.builtin().resolve(key, include_opt_in=True).routes


def test_vision_limits() -> None:
    for spec in llamaroute.models():
        for route in spec.routes:
            if spec.vision:
                assert route.max_images == 1, route.pinned
                assert route.image_formats, route.pinned
                assert route.max_image_bytes, route.pinned
            else:
                assert route.max_images == 0, route.pinned
    bedrock = llamaroute.get_model("llama-3.2-90b-vision").route("bedrock", region="us-east-1")
    assert bedrock.max_image_side == 1120
    assert bedrock.max_image_bytes == 3_750_000
    assert set(bedrock.image_formats) == {"png", "jpeg", "gif", "webp"}
    assert bedrock.max_temperature == 1.0


def test_tool_support_per_route() -> None:
    for key in ["llama-3.2-11b-vision", "llama-3.2-90b-vision"]:
        route = llamaroute.get_model(key).route("bedrock", region="us-west-2")
        assert route.tools
        assert not route.tools_streaming
    for key in ["llama-3.2-1b", "llama-3.2-3b"]:
        assert not llamaroute.get_model(key).route("bedrock", region="us-west-2").tools
        assert llamaroute.get_model(key).route("ollama").tools


def test_unconfirmed_fields_name_real_fields() -> None:
    fields = set(llamaroute.Route.model_fields) | {"availability"}
    for spec in llamaroute.models():
        for route in spec.routes:
            assert set(route.unconfirmed) <= fields, route.pinned
    assert "max_output_tokens" in (
        llamaroute.get_model("llama-3.2-3b").route("bedrock", region="us-east-1").unconfirmed
    )


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("llama-3.2-90b-vision", "llama-3.2-90b-vision"),
        ("llama-3.2-90b-vision-instruct", "llama-3.2-90b-vision"),
        ("Llama-3.2-90B-Vision-Instruct", "llama-3.2-90b-vision"),
        ("meta-llama/Llama-3.2-11B-Vision-Instruct", "llama-3.2-11b-vision"),
        ("llama3.2-1b", "llama-3.2-1b"),
        ("llama_3.2_3b", "llama-3.2-3b"),
        ("Llama 3.2 3B Instruct", "llama-3.2-3b"),
        ("llama-3.2-11b", "llama-3.2-11b-vision"),
        ("  llama-3.2-1b  ", "llama-3.2-1b"),
    ],
)
def test_obvious_spellings(name: str, key: str) -> None:
    resolution = Catalog.builtin().resolve(name)
    assert resolution.model.key == key
    assert resolution.pinned is None
    assert {route.provider for route in resolution.routes} == {"openrouter", "bedrock", "ollama"}


@pytest.mark.parametrize(
    ("name", "provider", "model_id", "key"),
    [
        ("bedrock:us.meta.llama3-2-3b-instruct-v1:0", "bedrock",
         "us.meta.llama3-2-3b-instruct-v1:0", "llama-3.2-3b"),
        ("ollama:llama3.2-vision:11b", "ollama", "llama3.2-vision:11b", "llama-3.2-11b-vision"),
        ("ollama:llama3.2-vision", "ollama", "llama3.2-vision:11b", "llama-3.2-11b-vision"),
        ("openrouter:meta-llama/llama-3.2-1b-instruct:free", "openrouter",
         "meta-llama/llama-3.2-1b-instruct:free", "llama-3.2-1b"),
        ("us.meta.llama3-2-90b-instruct-v1:0", "bedrock", "us.meta.llama3-2-90b-instruct-v1:0",
         "llama-3.2-90b-vision"),
        ("llama3.2:1b", "ollama", "llama3.2:1b", "llama-3.2-1b"),
    ],
)  # fmt: skip
def test_pinned_forms_resolve_to_one_route(
    name: str, provider: str, model_id: str, key: str
) -> None:
    resolution = Catalog.builtin().resolve(name)
    assert resolution.model.key == key
    assert resolution.pinned is not None
    assert resolution.routes == (resolution.pinned,)
    assert (resolution.pinned.provider, resolution.pinned.model_id) == (provider, model_id)


@pytest.mark.parametrize("name", ["bedrock:", "ollama:", "openrouter:"])
def test_malformed_pinned_form(name: str) -> None:
    with pytest.raises(UnknownModelError, match="provider:model_id"):
        llamaroute.get_model(name)


def test_pinned_id_not_in_catalog_names_the_known_ids() -> None:
    with pytest.raises(UnknownModelError) as caught:
        llamaroute.get_model("ollama:llama3.2:8b")
    assert "llama3.2:1b" in str(caught.value)
    assert "catalog file" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("llama-3.2-9b", "llama-3.2-90b-vision"), ("lama-3.2-3b", "llama-3.2-3b"),
     ("llama-3.2-1", "llama-3.2-1b")],
)  # fmt: skip
def test_unknown_key_suggests_close_matches(name: str, expected: str) -> None:
    with pytest.raises(UnknownModelError) as caught:
        llamaroute.get_model(name)
    assert expected in caught.value.suggestions
    assert expected in str(caught.value)
    assert caught.value.name == name


@pytest.mark.parametrize("name", ["", "   ", "gpt-4o", "nowhere:at-all"])
def test_unknown_names(name: str) -> None:
    with pytest.raises(UnknownModelError):
        llamaroute.get_model(name)


def test_unknown_model_error_is_an_invalid_request_and_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        llamaroute.get_model("gpt-4o")


def test_route_for_provider_without_the_model() -> None:
    with pytest.raises(UnsupportedFeatureError, match="no route on vertex"):
        llamaroute.get_model("llama-3.2-1b").route("vertex")


# --- user catalog files ---------------------------------------------------------------------


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_user_file_adds_a_custom_ollama_tag_inheriting_limits(tmp_path: Path) -> None:
    path = _write(tmp_path, "mine.toml", """
[[routes]]
provider = "ollama"
model = "llama-3.2-3b"
model_id = "llama3.2:3b-instruct-q8_0"
""")  # fmt: skip
    catalog = llamaroute.load_catalog(path)
    route = catalog.resolve("ollama:llama3.2:3b-instruct-q8_0").pinned
    assert route is not None
    stock = catalog.get("llama-3.2-3b").route("ollama")
    assert route.model == "llama-3.2-3b"
    assert route.tools == stock.tools
    assert route.json_output == stock.json_output
    assert route.alternate_ids == ()  # identity fields are not inherited
    assert route.source == f"file:{path}"
    # The new tag is one more route for the key; the built-in catalog is unchanged.
    assert len(catalog.get("llama-3.2-3b").routes_for("ollama")) == 2
    assert len(Catalog.builtin().get("llama-3.2-3b").routes_for("ollama")) == 1


def test_user_file_adds_a_region(tmp_path: Path) -> None:
    path = _write(tmp_path, "apac.toml", """
provider = "bedrock"

[[routes]]
model = "llama-3.2-3b"
model_id = "apac.meta.llama3-2-3b-instruct-v1:0"
regions = ["ap-northeast-1"]
source = "https://example.invalid/our-profile"
checked = 2026-11-01
""")  # fmt: skip
    spec = llamaroute.load_catalog(path).get("llama-3.2-3b")
    route = spec.route("bedrock", region="ap-northeast-1")
    assert route.model_id == "apac.meta.llama3-2-3b-instruct-v1:0"
    assert route.max_output_tokens == 2048  # inherited from the US profile
    assert spec.route("bedrock", region="us-east-1").model_id.startswith("us.")


def test_user_file_overrides_fields_of_an_existing_route(tmp_path: Path) -> None:
    path = _write(tmp_path, "override.toml", """
[[routes]]
provider = "bedrock"
model_id = "us.meta.llama3-2-90b-instruct-v1:0"
max_output_tokens = 4096
""")  # fmt: skip
    catalog = llamaroute.load_catalog(path)
    route = catalog.get("llama-3.2-90b-vision").route("bedrock", region="us-east-1")
    assert route.max_output_tokens == 4096
    assert route.max_image_side == 1120
    assert len(catalog.get("llama-3.2-90b-vision").routes_for("bedrock")) == 1


def test_user_file_adds_an_alias(tmp_path: Path) -> None:
    path = _write(tmp_path, "alias.toml", """
[models."llama-3.2-3b"]
aliases = ["small"]
""")  # fmt: skip
    assert llamaroute.load_catalog(path).get("small").key == "llama-3.2-3b"


def test_several_user_files_layer_in_order(tmp_path: Path) -> None:
    first = _write(tmp_path, "a.toml", """
[[routes]]
provider = "bedrock"
model_id = "us.meta.llama3-2-1b-instruct-v1:0"
max_output_tokens = 1000
""")  # fmt: skip
    second = _write(tmp_path, "b.toml", first.read_text().replace("1000", "1500"))
    route = llamaroute.load_catalog(first, second).get("bedrock:us.meta.llama3-2-1b-instruct-v1:0")
    assert route.route("bedrock", region="us-east-1").max_output_tokens == 1500


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[routes]\n", "not valid TOML"),
        ("surprise = 1\n", "unknown top-level keys"),
        ('[[routes]]\nprovider = "ollama"\nmodel = "llama-3.2-3b"\n',
         "needs 'provider' and 'model_id'"),
        ('[[routes]]\nprovider = "ollama"\nmodel = "llama-9"\nmodel_id = "x"\n',
         "not a catalog key"),
        ('[[routes]]\nprovider = "ollama"\nmodel_id = "llama3.2:1b"\nmax_images = -1\n',
         "max_images"),
        ('[[routes]]\nprovider = "ollama"\nmodel_id = "llama3.2:1b"\ncolour = "red"\n', "colour"),
        ('[[routes]]\nprovider = "ollama"\nmodel_id = "llama3.2:1b"\nimage_formats = ["tiff"]\n',
         "image_formats"),
        ('[models."llama-3.2-1b"]\naliases = ["llama-3.2-3b"]\n', "claimed by both"),
        ('[models."llama-4"]\nname = "Llama 4"\n', "invalid model entry"),
        ("routes = 3\n", "array of tables"),
    ],
)  # fmt: skip
def test_broken_user_file_is_a_configuration_error(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = _write(tmp_path, "broken.toml", text)
    with pytest.raises(ConfigurationError, match=expected):
        llamaroute.load_catalog(path)


def test_missing_user_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        llamaroute.load_catalog(tmp_path / "nope.toml")
    with pytest.raises(ConfigurationError, match="directory"):
        llamaroute.load_catalog(tmp_path)
