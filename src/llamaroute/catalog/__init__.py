"""The catalog layer: the Llama 3.2 model keys, the routes serving them (provider, native ID,
limits, capabilities), name resolution (keys, aliases, ``provider:model_id`` pins), the dated
price records, and the TOML sources that ``scripts/build_data.py`` compiles.

Internal: this package's ``__init__`` is the interface for the layers above and the tests; the
public names are re-exported from :mod:`llamaroute`. It imports only from the layers below it
(request and response types, messages, tools, images, schemas, errors, records; the order is
``[tool.importlinter]`` in ``pyproject.toml``).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from ._catalog import (
    Catalog,
    CatalogData,
    ModelSpec,
    Resolution,
    Route,
    get_model,
    models,
)
from ._live_prices import (
    LiveRead,
    RouteLifecycle,
    exact_amount,
    per_million,
    plain_amount,
    short_amount,
)
from ._price_file import (
    PRICES_ENV,
    PriceChange,
    default_catalog,
    default_prices_path,
    diff_prices,
    render_price_file,
    toml_table,
    write_atomically,
)
from ._prices import MILLION, Money, Price, match_prices, validate_prices
from ._region_reasons import region_skip_reason
from ._regions import AWS_REGIONS, check_region
from ._sources import Source, dump_catalog, load_catalog, merge_sources, read_toml

if TYPE_CHECKING:
    from ._image_checks import (
        IMAGE_PLACEHOLDER,
        ImagePolicy,
        acheck_request_images,
        apply_image_policy,
        check_image_count,
        check_image_policy,
        check_request_images,
        prepare_image,
    )

__all__ = [
    "AWS_REGIONS",
    "IMAGE_PLACEHOLDER",
    "MILLION",
    "PRICES_ENV",
    "Catalog",
    "CatalogData",
    "ImagePolicy",
    "LiveRead",
    "ModelSpec",
    "Money",
    "Price",
    "PriceChange",
    "Resolution",
    "Route",
    "RouteLifecycle",
    "Source",
    "acheck_request_images",
    "apply_image_policy",
    "check_image_count",
    "check_image_policy",
    "check_region",
    "check_request_images",
    "default_catalog",
    "default_prices_path",
    "diff_prices",
    "dump_catalog",
    "exact_amount",
    "get_model",
    "load_catalog",
    "match_prices",
    "merge_sources",
    "models",
    "per_million",
    "plain_amount",
    "prepare_image",
    "read_toml",
    "region_skip_reason",
    "render_price_file",
    "short_amount",
    "toml_table",
    "validate_prices",
    "write_atomically",
]

#: Loaded on first use: the checks of a request's images import the request models (messages,
#: tools, schemas), which a client needs and `llamaroute estimate` does not.
_IMAGE_CHECKS = (
    "IMAGE_PLACEHOLDER",
    "ImagePolicy",
    "acheck_request_images",
    "apply_image_policy",
    "check_image_count",
    "check_image_policy",
    "check_request_images",
    "prepare_image",
)

__getattr__ = lazy_getattr(__name__, dict.fromkeys(_IMAGE_CHECKS, "._image_checks"), globals())
