"""The model catalog: Llama 3.2 keys, and the routes (provider + native ID + limits) serving them.

The package ships ``_data/catalog.json``, compiled by ``scripts/build_data.py`` from the reviewed
TOML in ``providers/``, read once, on first use; :func:`load_catalog` layers user TOML over it.

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
import threading
from collections.abc import Callable
from datetime import date
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .._exceptions import UnknownModelError, UnsupportedFeatureError
from ..images import ImageFormat
from ._names import name_index, normalise_name
from ._notices import CatalogNotices, LocalDate, lifecycle_text
from ._prices import Price, RoutePrices, match_prices
from ._regions import check_region

__all__ = [
    "Catalog",
    "CatalogData",
    "Lifecycle",
    "ModelSpec",
    "Resolution",
    "Route",
    "get_model",
    "models",
]


Lifecycle = Literal["active", "legacy", "eol"]

#: Model names whose resolution a catalog remembers.
_RESOLVED_MAX = 1024

# Fields that identify one route and must not be inherited when a user file adds a new route
# modelled on an existing one (a custom Ollama tag inherits the limits of the stock tag, not
# its ID or its regions).
_IDENTITY_FIELDS = frozenset(
    {"model_id", "alternate_ids", "variant", "opt_in", "geography", "regions",
     "destination_regions", "source", "checked", "notes", "unconfirmed", "lifecycle",
     "legacy_date", "end_of_life", "lifecycle_source", "lifecycle_checked"}
)  # fmt: skip


StructuredMechanism = Literal["json_schema", "format", "tool", "instructions", "none"]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Route(_Data):
    """One way to call a model: a provider, its native model ID, and what that route accepts.

    ``regions`` lists the regions a client must be in to use this route (empty: any region).
    ``opt_in`` routes (such as OpenRouter's ``:free`` variants) are used only when asked for.
    ``unconfirmed`` names the fields whose values are cautious assumptions, not documented facts.
    ``checked`` is the date ``source`` was read (not the date the entry was last reviewed).

    Lifecycle (Bedrock's Active -> Legacy -> EOL): ``lifecycle`` is the status as read,
    ``legacy_date`` when the route became (or becomes) legacy and ``end_of_life`` when requests
    start to fail, each read from ``lifecycle_source`` on ``lifecycle_checked``. A route whose
    end of life is confirmed and past (see :meth:`past_end_of_life`) is skipped before anything
    is sent; one whose date is in ``unconfirmed`` is still tried, with a warning.
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
    tools_source: str = ""  # where `tools` and `tools_streaming` were read
    json_output: bool = False
    # structured_output: a schema is enforced natively, by the mechanism llamaroute uses
    # (``_mechanism``); ``_native``: the provider's own one when llamaroute does not use it yet.
    structured_output: bool = False
    structured_output_mechanism: StructuredMechanism = "instructions"
    structured_output_native: StructuredMechanism | None = None
    structured_output_source: str = ""
    max_temperature: float = Field(default=2.0, gt=0)
    max_stop_sequences: int | None = Field(default=None, ge=0)
    # The sampling keywords beyond temperature and top_p that the route takes; a request that
    # sets one the route lacks skips it (routing's route_refusal).
    sampling: tuple[Literal["top_k", "frequency_penalty", "presence_penalty"], ...] = ()
    sampling_source: str = ""  # where `sampling` was read
    # Tokens the upstream's chat template adds beyond Meta's format, per request: (low,
    # expected, high). The Hugging Face template's date header is 20 to 25 (the TOML sources
    # say where each figure was read).
    template_tokens: tuple[int, int, int] = (0, 0, 0)
    # Input tokens billed per image: (low, expected, high); None: 0, 1601 per tile, 6404.
    image_tokens: tuple[int, int, int] | None = None
    unconfirmed: tuple[str, ...] = ()
    # Bedrock's model lifecycle (ACTIVE -> LEGACY -> end of life), shipped with sources and
    # refreshed from ListFoundationModels by `llamaroute prices refresh`.
    lifecycle: Lifecycle = "active"
    legacy_date: date | None = None
    end_of_life: date | None = None
    lifecycle_source: str = ""
    lifecycle_checked: date | None = None
    notes: str = ""
    source: str = Field(min_length=1)
    checked: date

    def past_end_of_life(self, today: date) -> bool:
        """Whether the route has certainly reached its end of life by ``today``: its status is
        ``eol``, or its ``end_of_life`` date has come and is not marked unconfirmed."""
        if self.lifecycle == "eol":
            return True
        return (
            self.end_of_life is not None
            and self.end_of_life <= today
            and "end_of_life" not in self.unconfirmed
        )

    def lifecycle_text(self, today: date) -> str:
        """The lifecycle as a short phrase (``active``, ``legacy since 2026-01-07``,
        ``eol 2026-07-07?``; ``?`` marks an unconfirmed date)."""
        return lifecycle_text(self, today)

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

    @field_validator("template_tokens", "image_tokens")
    @classmethod
    def _ordered_counts(cls, value: tuple[int, int, int] | None) -> tuple[int, int, int] | None:
        if value is not None and not 0 <= value[0] <= value[1] <= value[2]:
            raise ValueError("must be [low, expected, high] with 0 <= low <= expected <= high")
        return value

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
    and the price entries (see :mod:`llamaroute.catalog._prices` for how they select routes)."""

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


class Catalog(CatalogNotices):
    """An immutable set of models and routes, with name resolution.

    ``Catalog.builtin()`` is the packaged catalog; :func:`load_catalog` layers user TOML files
    over it. Pass a catalog to the functions and clients that take ``catalog=``.

    ``today`` is the catalog's clock (default :meth:`datetime.date.today`): the ages of prices
    and the lifecycle of routes are judged by it, so a test can set the date
    (``Catalog(data, today=lambda: date(2026, 12, 7))``, or :meth:`with_clock`). The catalog
    also remembers which warnings it has given (a stale price, an unconfirmed end of life), so
    that each is logged once per catalog, not once per call.
    """

    def __init__(self, data: CatalogData, *, today: Callable[[], date] | None = None) -> None:
        self.data = data
        self.today: Callable[[], date] = today or LocalDate()
        self._warned: set[tuple[str, ...]] = set()
        self._warn_lock = threading.Lock()
        self._by_key = {spec.key: spec for spec in data.models}
        self._names = name_index(data.models)
        self._providers = tuple(
            dict.fromkeys(route.provider for spec in data.models for route in spec.routes)
        )
        self._regions = frozenset(
            region
            for spec in data.models
            for route in spec.routes
            for region in (*route.regions, *route.destination_regions)
        )
        # Resolved once, so that a route's price is one dict lookup on the hot path.
        self._prices: dict[tuple[str, str], RoutePrices] = match_prices(
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

    def check_region(self, region: str) -> str:
        """``region`` if it is an AWS region name or a region this catalog's routes name; else
        :class:`ConfigurationError` with close matches ("did you mean us-east-1?")."""
        return check_region(region, self._regions)

    def models(self) -> list[ModelSpec]:
        """Every model, in catalog order."""
        return list(self.data.models)

    def with_clock(self, today: Callable[[], date]) -> Catalog:
        """The same data with another clock (a fresh set of given warnings)."""
        return Catalog(self.data, today=today)

    def price(self, route: Route, region: str | None = None) -> Price | None:
        """The price of ``route`` for a client in ``region``, or ``None`` when it is unknown
        (its cost is then unknown, never 0).

        A cross-region profile is billed at the price of the region the client calls from, so a
        route priced per region (Bedrock's ``eu.`` profiles) needs the caller's ``region``.
        When it is ``None`` (or a region the route has no price for) the *highest* of the
        route's regional prices is returned: an estimate or a budget check must not guess low.
        A route with one price returns it whatever the region.
        """
        table = self._prices.get((route.provider, route.model_id))
        return None if table is None else table.pick(region)

    def regional_prices(self, route: Route) -> dict[str | None, Price]:
        """Every price of ``route``: by source region, or under ``None`` when it has one price
        for all its regions (empty: unknown)."""
        return dict(self._prices.get((route.provider, route.model_id), {}))

    def price_age(self, price: Price | None) -> int | None:
        """Days since ``price``'s source was read, by this catalog's clock."""
        return None if price is None else price.age_days(self.today())

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
        key = self._names.get(normalise_name(name))
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
        close = difflib.get_close_matches(normalise_name(name), list(candidates), n=6, cutoff=0.5)
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


@functools.cache
def _builtin_catalog() -> Catalog:
    # Cached: the packaged data never changes while the process runs.
    raw = resources.files("llamaroute").joinpath("_data/catalog.json").read_bytes()
    return Catalog(CatalogData.model_validate_json(raw))


def models(*, catalog: Catalog | None = None) -> list[ModelSpec]:
    """Every model in the catalog (the built-in one unless ``catalog`` is given)."""
    return (catalog or Catalog.builtin()).models()


def get_model(name: str, *, catalog: Catalog | None = None) -> ModelSpec:
    """The model a name refers to: a key (``"llama-3.2-90b-vision"``), an alias, a pinned
    ``"provider:model_id"`` or a native ID. Raises :class:`UnknownModelError` otherwise."""
    return (catalog or Catalog.builtin()).get(name)
