"""The model catalog: Llama 3.2 keys, and the routes (provider + native ID + limits) serving them.

The package ships ``_data/catalog.json``, compiled by ``scripts/build_data.py`` from the
reviewed TOML in ``providers/``. It is read lazily, once, on first use. Users extend or override
it with their own TOML files in the same format (:func:`load_catalog`).

A model name resolves in this order:

1. a catalog key or alias, after normalising case, ``_``/spaces, a leading ``meta-llama/`` and
   a trailing ``-instruct`` (``Llama-3.2-90B-Vision-Instruct`` is ``llama-3.2-90b-vision``);
2. a pinned ``provider:model_id``, split at the first colon only, so IDs that contain colons
   work (``bedrock:us.meta.llama3-2-3b-instruct-v1:0``, ``ollama:llama3.2-vision:11b``);
3. a native ID that exactly one route uses (``us.meta.llama3-2-3b-instruct-v1:0``), which
   pins that route.
"""

from __future__ import annotations

import difflib
import functools
import json
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._exceptions import ConfigurationError, UnknownModelError, UnsupportedFeatureError
from ._pricing import Price, match_prices, merge_price_entries, price_entries, validate_prices
from ._types import validation_message

__all__ = [
    "Catalog",
    "CatalogData",
    "ImageFormat",
    "ModelSpec",
    "Resolution",
    "Route",
    "get_model",
    "load_catalog",
    "models",
]

ImageFormat = Literal["png", "jpeg", "gif", "webp"]

#: Model names whose resolution a catalog remembers.
_RESOLVED_MAX = 1024

# Fields that identify one route and must not be inherited when a user file adds a new route
# modelled on an existing one (a custom Ollama tag inherits the limits of the stock tag, not
# its ID or its regions).
_IDENTITY_FIELDS = frozenset(
    {"model_id", "alternate_ids", "variant", "opt_in", "geography", "regions",
     "destination_regions", "source", "checked", "notes", "unconfirmed"}
)  # fmt: skip


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Route(_Data):
    """One way to call a model: a provider, its native model ID, and what that route accepts.

    ``regions`` lists the regions a client must be in to use this route (empty: any region).
    ``opt_in`` routes (such as OpenRouter's ``:free`` variants) are used only when asked for.
    ``unconfirmed`` names the fields whose values are cautious assumptions, not documented facts.
    """

    provider: str = Field(min_length=1, pattern=r"^[a-z][a-z0-9_-]*$")
    model: str = Field(min_length=1)
    model_id: str = Field(min_length=1)
    alternate_ids: tuple[str, ...] = ()
    foundation_model_id: str | None = None
    variant: str | None = None
    opt_in: bool = False
    geography: str | None = None
    regions: tuple[str, ...] = ()
    destination_regions: tuple[str, ...] = ()
    context_window: int = Field(gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    max_images: int = Field(ge=0)
    image_formats: tuple[ImageFormat, ...] = ()
    max_image_bytes: int | None = Field(default=None, gt=0)
    max_image_side: int | None = Field(default=None, gt=0)
    max_image_pixels: int | None = Field(default=None, gt=0)
    # Whether the provider fetches an http(s) image URL itself. If not, llamaroute fetches it
    # (under its URL policy) and sends the bytes.
    image_urls: bool = False
    system_prompt: bool = True
    tools: bool = False
    tools_streaming: bool = False
    json_output: bool = False
    structured_output: bool = False
    max_temperature: float = Field(default=2.0, gt=0)
    max_stop_sequences: int | None = Field(default=None, ge=0)
    unconfirmed: tuple[str, ...] = ()
    notes: str = ""
    source: str = Field(min_length=1)
    checked: date

    @property
    def pinned(self) -> str:
        """The ``provider:model_id`` form that selects exactly this route."""
        return f"{self.provider}:{self.model_id}"

    @property
    def vision(self) -> bool:
        """Whether this route accepts images."""
        return self.max_images > 0

    def serves_region(self, region: str | None) -> bool:
        """Whether a client in ``region`` can use this route (always, if it is not regional)."""
        return not self.regions or region in self.regions

    def answers_to(self, model_id: str) -> bool:
        """Whether ``model_id`` names this route (its ID or one of its alternate IDs)."""
        return model_id == self.model_id or model_id in self.alternate_ids


class ModelSpec(_Data):
    """A Llama 3.2 model family member and every route that serves it."""

    key: str = Field(min_length=1)
    name: str
    parameters: int = Field(gt=0)
    context_window: int = Field(gt=0)
    input_modalities: tuple[Literal["text", "image"], ...]
    output_modalities: tuple[Literal["text"], ...]
    languages: tuple[str, ...]
    image_languages: tuple[str, ...] = ()
    knowledge_cutoff: str
    aliases: tuple[str, ...] = ()
    source: str = Field(min_length=1)
    checked: date
    routes: tuple[Route, ...] = ()

    @property
    def vision(self) -> bool:
        """Whether the model takes images."""
        return "image" in self.input_modalities

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers with at least one route for this model, in catalog order."""
        return tuple(dict.fromkeys(route.provider for route in self.routes))

    def routes_for(
        self,
        provider: str | None = None,
        *,
        region: str | None = None,
        include_opt_in: bool = False,
    ) -> tuple[Route, ...]:
        """The routes of ``provider`` (every provider if ``None``) usable from ``region``.

        With ``region=None`` regional routes are listed whatever their regions; with a region,
        only the routes that serve it. Opt-in routes (``:free`` variants) are left out unless
        ``include_opt_in``.
        """
        return tuple(
            route
            for route in self.routes
            if (provider is None or route.provider == provider)
            and (region is None or route.serves_region(region))
            and (include_opt_in or not route.opt_in)
        )

    def route(
        self, provider: str, *, region: str | None = None, variant: str | None = None
    ) -> Route:
        """The one route of ``provider`` for this model from ``region`` (and ``variant``).

        Raises :class:`UnsupportedFeatureError` with the regions or variants that do exist when
        the provider does not serve this model there, before anything is sent.
        """
        offered = [route for route in self.routes if route.provider == provider]
        if not offered:
            raise UnsupportedFeatureError(
                f"{self.key} has no route on {provider}; it is served by "
                f"{', '.join(self.providers) or 'no provider'}"
            )
        matching = [
            route for route in offered if route.variant == variant and route.serves_region(region)
        ]
        if matching:
            return matching[0]
        if region is not None and not any(route.serves_region(region) for route in offered):
            where = "; ".join(
                f"{route.model_id} from {', '.join(route.regions)}"
                for route in offered
                if route.regions
            )
            raise UnsupportedFeatureError(
                f"{self.key} is not offered on {provider} in region {region}. "
                f"It is offered as {where}. Use one of those regions, or another provider."
            )
        variants = sorted({route.variant or "(default)" for route in offered})
        raise UnsupportedFeatureError(
            f"{self.key} on {provider} has no variant {variant!r}; variants: {', '.join(variants)}"
        )


class CatalogData(_Data):
    """The compiled catalog, as stored in ``_data/catalog.json``: models with their routes,
    and the price entries (see :mod:`llamaroute._pricing` for how they select routes)."""

    generated_by: str = ""
    models: tuple[ModelSpec, ...]
    prices: tuple[Price, ...] = ()


class Resolution(_Data):
    """The result of resolving a model name: the model, and the routes it allows.

    ``pinned`` is set when the name selected one route (``provider:model_id`` or a native ID);
    ``routes`` is then just that route.
    """

    model: ModelSpec
    routes: tuple[Route, ...]
    pinned: Route | None = None


class Catalog:
    """An immutable set of models and routes, with name resolution.

    ``Catalog.builtin()`` is the packaged catalog; :func:`load_catalog` layers user TOML files
    over it. Pass a catalog to the functions and clients that take ``catalog=``.
    """

    def __init__(self, data: CatalogData) -> None:
        self.data = data
        self._by_key = {spec.key: spec for spec in data.models}
        self._names = self._name_index(data.models)
        self._providers = tuple(
            dict.fromkeys(route.provider for spec in data.models for route in spec.routes)
        )
        # Resolved once, so that a route's price is one dict lookup on the hot path.
        self._prices = match_prices(
            data.prices, (route for spec in data.models for route in spec.routes)
        )
        # Every call resolves its model name: the catalog is immutable, so each name's answer
        # is kept (bounded: names come from callers).
        self._resolved: dict[tuple[str, bool], Resolution] = {}

    @classmethod
    def builtin(cls) -> Catalog:
        """The catalog shipped with the package (loaded once, on first use)."""
        return _builtin_catalog()

    def __repr__(self) -> str:
        return f"<Catalog models={list(self._by_key)} providers={list(self._providers)}>"

    @property
    def providers(self) -> tuple[str, ...]:
        """Every provider that has a route in this catalog."""
        return self._providers

    def models(self) -> list[ModelSpec]:
        """Every model, in catalog order."""
        return list(self.data.models)

    def price(self, route: Route) -> Price | None:
        """The price of ``route``, or ``None`` when it is unknown (its cost is then unknown)."""
        return self._prices.get((route.provider, route.model_id))

    def get(self, name: str) -> ModelSpec:
        """The model a name refers to (key, alias, pinned form or native ID)."""
        return self.resolve(name).model

    def resolve(self, name: str, *, include_opt_in: bool = False) -> Resolution:
        """Resolve a model name to its model and routes. See the module docstring for the rules.

        Raises :class:`UnknownModelError` (with close matches in ``suggestions``) for names that
        match nothing, and for bare foundation-model IDs that a provider does not serve on
        demand.
        """
        if isinstance(name, str):
            known = self._resolved.get((name, include_opt_in))
            if known is not None:
                return known
        resolution = self._resolve(name, include_opt_in)
        if len(self._resolved) < _RESOLVED_MAX:
            self._resolved[(name, include_opt_in)] = resolution
        return resolution

    def _resolve(self, name: str, include_opt_in: bool) -> Resolution:
        if not isinstance(name, str) or not name.strip():
            raise UnknownModelError("model name is empty", name=str(name))
        key = self._names.get(_normalise(name))
        if key is not None:
            spec = self._by_key[key]
            return Resolution(model=spec, routes=spec.routes_for(include_opt_in=include_opt_in))
        provider, sep, model_id = name.strip().partition(":")
        if sep and provider in self._providers:
            if not model_id:
                raise UnknownModelError(
                    f"{name!r} names no model: a pinned model is 'provider:model_id', "
                    f"for example {self._example_pin(provider)!r}",
                    name=name,
                )
            return self._pin(name, provider, model_id)
        native = [
            route
            for spec in self.data.models
            for route in spec.routes
            if route.answers_to(name.strip())
        ]
        if len(native) == 1:
            return self._pinned_resolution(native[0])
        self._refuse_foundation_id(name, provider=None, model_id=name.strip())
        raise self._unknown(name)

    def _pin(self, name: str, provider: str, model_id: str) -> Resolution:
        for spec in self.data.models:
            for route in spec.routes:
                if route.provider == provider and route.answers_to(model_id):
                    return self._pinned_resolution(route)
        self._refuse_foundation_id(name, provider=provider, model_id=model_id)
        known = [
            route.pinned for spec in self.data.models for route in spec.routes
            if route.provider == provider
        ]  # fmt: skip
        raise UnknownModelError(
            f"{model_id!r} is not a {provider} model ID in the catalog. Known {provider} IDs: "
            f"{', '.join(r.partition(':')[2] for r in known)}. To use another ID, add a route "
            "for it in your own catalog file (see llamaroute.load_catalog).",
            name=name,
            suggestions=difflib.get_close_matches(name, known, n=3, cutoff=0.5),
        )

    def _pinned_resolution(self, route: Route) -> Resolution:
        return Resolution(model=self._by_key[route.model], routes=(route,), pinned=route)

    def _refuse_foundation_id(self, name: str, *, provider: str | None, model_id: str) -> None:
        for spec in self.data.models:
            profiles = [
                route for route in spec.routes
                if route.foundation_model_id == model_id
                and (provider is None or route.provider == provider)
            ]  # fmt: skip
            if profiles:
                usable = ", ".join(
                    f"{route.pinned} ({', '.join(route.regions) or 'any region'})"
                    for route in profiles
                )
                raise UnknownModelError(
                    f"{model_id} is a foundation-model ID that {profiles[0].provider} does not "
                    f"serve on demand; call it through an inference profile instead: {usable}, "
                    f"or just use the key {spec.key!r}",
                    name=name,
                    suggestions=[spec.key, *(route.pinned for route in profiles)],
                )

    def _unknown(self, name: str) -> UnknownModelError:
        candidates = {**dict.fromkeys(self._names), **{
            route.pinned: None for spec in self.data.models for route in spec.routes
        }}  # fmt: skip
        close = difflib.get_close_matches(_normalise(name), list(candidates), n=6, cutoff=0.5)
        suggestions = list(dict.fromkeys(self._names.get(match, match) for match in close))[:3]
        hint = f" Did you mean {' or '.join(map(repr, suggestions))}?" if suggestions else ""
        return UnknownModelError(
            f"unknown model {name!r}.{hint} Known keys: {', '.join(self._by_key)}; "
            f"a route can also be pinned as 'provider:model_id' "
            f"(providers: {', '.join(self._providers)}).",
            name=name,
            suggestions=suggestions,
        )

    def _example_pin(self, provider: str) -> str:
        for spec in self.data.models:
            for route in spec.routes:
                if route.provider == provider:
                    return route.pinned
        return f"{provider}:<model_id>"

    @staticmethod
    def _name_index(specs: Iterable[ModelSpec]) -> dict[str, str]:
        index: dict[str, str] = {}
        for spec in specs:
            for name in (spec.key, *spec.aliases):
                normalised = _normalise(name)
                owner = index.setdefault(normalised, spec.key)
                if owner != spec.key:
                    raise ConfigurationError(
                        f"catalog name {name!r} is claimed by both {owner} and {spec.key}"
                    )
        return index


def _normalise(name: str) -> str:
    text = name.strip().lower().replace("_", "-").replace(" ", "-")
    text = text.removeprefix("meta-llama/")
    return text.removesuffix("-instruct")


@functools.cache
def _builtin_catalog() -> Catalog:
    # Cached: the packaged data never changes while the process runs.
    raw = resources.files("llamaroute").joinpath("_data/catalog.json").read_bytes()
    return Catalog(CatalogData.model_validate_json(raw))


def load_catalog(*paths: str | Path, base: Catalog | None = None) -> Catalog:
    """A catalog made of ``base`` (the built-in one by default) plus the given TOML files.

    A file may add or change models (``[models."<key>"]``) and routes (``[[routes]]``), in the
    same format as the package's ``providers/*.toml``. A route with the ``provider`` and
    ``model_id`` of an existing route changes only the fields it sets; a new route takes its
    limits from an existing route of the same provider and model, so a custom Ollama tag needs
    only ``provider``, ``model`` and ``model_id``::

        [[routes]]
        provider = "ollama"
        model = "llama-3.2-3b"
        model_id = "llama3.2:3b-instruct-q8_0"

    Raises :class:`ConfigurationError` naming the file and the problem.
    """
    start = (base or Catalog.builtin()).data
    return Catalog(merge_sources(start, [_read_toml(Path(path)) for path in paths]))


def models(*, catalog: Catalog | None = None) -> list[ModelSpec]:
    """Every model in the catalog (the built-in one unless ``catalog`` is given)."""
    return (catalog or Catalog.builtin()).models()


def get_model(name: str, *, catalog: Catalog | None = None) -> ModelSpec:
    """The model a name refers to: a key (``"llama-3.2-90b-vision"``), an alias, a pinned
    ``"provider:model_id"`` or a native ID. Raises :class:`UnknownModelError` otherwise."""
    return (catalog or Catalog.builtin()).get(name)


# --- TOML sources ---------------------------------------------------------------------------


class Source:
    """One parsed TOML file: its path (for messages) and its content."""

    def __init__(self, path: Path, content: Mapping[str, Any]) -> None:
        self.path = path
        self.content = content


def _read_toml(path: Path) -> Source:
    try:
        with path.open("rb") as handle:
            return Source(path, tomllib.load(handle))
    except FileNotFoundError:
        raise ConfigurationError(f"catalog file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigurationError(f"catalog file is a directory: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"cannot read catalog file {path}: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"{path}: not valid TOML: {error}") from None


_FILE_KEYS = frozenset({"provider", "defaults", "models", "routes", "prices"})


def merge_sources(
    base: CatalogData | None,
    sources: Sequence[Source],
    *,
    require_provenance: bool = False,
    generated_by: str = "",
) -> CatalogData:
    """Layer TOML sources over ``base`` and validate the result with the runtime models.

    With ``require_provenance`` (the package's own data), every model, route and price entry
    must state its ``source`` and ``checked`` date itself; user files may leave them out.
    """
    specs: dict[str, dict[str, Any]] = {}
    # Each route's fields, and where its last change came from (for error messages).
    routes: list[tuple[str, dict[str, Any]]] = []
    prices: list[tuple[str, dict[str, Any]]] = []
    if base is not None:
        for spec in base.models:
            specs[spec.key] = spec.model_dump(exclude={"routes"})
            routes.extend((f"route {route.pinned}", route.model_dump()) for route in spec.routes)
        prices.extend((f"price for {p.describe()}", p.model_dump()) for p in base.prices)

    for source in sources:
        where = str(source.path)
        unknown = set(source.content) - _FILE_KEYS
        if unknown:
            raise ConfigurationError(
                f"{where}: unknown top-level keys {sorted(unknown)}; expected {sorted(_FILE_KEYS)}"
            )
        file_provider = source.content.get("provider")
        defaults = _table(source.content.get("defaults", {}), f"{where}: defaults")
        for key, fields in _table(source.content.get("models", {}), f"{where}: models").items():
            fields = _table(fields, f"{where}: models.{key}")
            _check_provenance(fields, f"{where}: models.{key}", require_provenance, source)
            specs[key] = {**specs.get(key, {}), **fields, "key": key}
        entries = source.content.get("routes", [])
        if not isinstance(entries, list):
            raise ConfigurationError(f"{where}: 'routes' must be an array of tables ([[routes]])")
        for number, entry in enumerate(entries, start=1):
            entry = _table(entry, f"{where}: routes #{number}")
            label = f"{where}: route #{number} ({entry.get('model_id', 'no model_id')})"
            _check_provenance(entry, label, require_provenance, source)
            fields = {**defaults, **entry}
            if file_provider is not None:
                fields.setdefault("provider", file_provider)
            _merge_route(routes, label, fields)
        for label, entry in price_entries(source.content, where, file_provider):
            _check_provenance(entry, label, require_provenance, source)
            merge_price_entries(prices, label, entry, override=not require_provenance)

    built: dict[str, ModelSpec] = {}
    for key, fields in specs.items():
        try:
            built[key] = ModelSpec.model_validate(fields)
        except ValidationError as error:
            raise ConfigurationError(
                f"invalid model entry {key!r}: {validation_message(error)}"
            ) from None
    attached: dict[str, list[Route]] = {key: [] for key in built}
    seen: set[tuple[str, str]] = set()
    for label, fields in routes:
        if fields.get("model") not in attached:
            raise ConfigurationError(
                f"{label}: model {fields.get('model')!r} is not a catalog key ({', '.join(built)})"
            )
        try:
            route = Route.model_validate(fields)
        except ValidationError as error:
            raise ConfigurationError(f"{label}: {validation_message(error)}") from None
        identity = (route.provider, route.model_id)
        if identity in seen:
            raise ConfigurationError(f"{label}: {route.pinned} is listed twice")
        seen.add(identity)
        attached[route.model].append(route)
    priced = validate_prices(prices)
    # Fails here, naming the file, if an entry prices no route or two price the same one.
    match_prices(
        priced,
        (route for found in attached.values() for route in found),
        labels=[label for label, _ in prices],
        strict=require_provenance,
    )
    return CatalogData(
        generated_by=generated_by,
        models=tuple(
            spec.model_copy(update={"routes": tuple(attached[key])}) for key, spec in built.items()
        ),
        prices=priced,
    )


def _merge_route(
    routes: list[tuple[str, dict[str, Any]]], label: str, fields: dict[str, Any]
) -> None:
    provider, model_id = fields.get("provider"), fields.get("model_id")
    if not provider or not model_id:
        raise ConfigurationError(f"{label}: a route needs 'provider' and 'model_id'")
    for index, (_, existing) in enumerate(routes):
        if existing["provider"] == provider and existing["model_id"] == model_id:
            routes[index] = (label, {**existing, **fields})
            return
    template = next(
        (
            existing
            for _, existing in routes
            if existing["provider"] == provider
            and existing["model"] == fields.get("model")
            and not existing.get("opt_in")
        ),
        None,
    )
    inherited = {k: v for k, v in (template or {}).items() if k not in _IDENTITY_FIELDS}
    routes.append((label, {**inherited, **fields}))


def _check_provenance(fields: Mapping[str, Any], label: str, required: bool, src: Source) -> None:
    if required:
        missing = [name for name in ("source", "checked") if name not in fields]
        if missing:
            raise ConfigurationError(f"{label}: every entry needs {' and '.join(missing)}")
    elif isinstance(fields, dict):
        # User files may leave provenance out: record the file itself as the source.
        fields.setdefault("source", f"file:{src.path}")
        fields.setdefault("checked", date.fromtimestamp(src.path.stat().st_mtime))


def _table(value: object, label: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{label}: expected a table, got {type(value).__name__}")
    return value


def dump_catalog(data: CatalogData) -> str:
    """The compiled catalog as stable, human-diffable JSON (what ``_data/catalog.json`` holds)."""
    return json.dumps(data.model_dump(mode="json"), indent=1, ensure_ascii=False) + "\n"
