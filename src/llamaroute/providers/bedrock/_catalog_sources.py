"""Reading AWS's live price and lifecycle data for ``llamaroute prices refresh``: the I/O only.

* The AWS Price List API: ``pricing.get_products(ServiceCode="AmazonBedrock",
  Filters=[TERM_MATCH regionCode=<region>], FormatVersion="aws_v1")``, page by page through
  ``NextToken``. The ``pricing`` endpoint exists only in us-east-1, eu-central-1 and
  ap-south-1; us-east-1 is the default, whatever region is priced.
* Bedrock's control plane: ``bedrock.list_foundation_models(byProvider="meta")`` for each
  model's ``modelLifecycle``.

boto3 is imported on first use (the ``bedrock`` extra). The credentials are boto3's default
chain; none found is a :class:`ConfigurationError` saying so. Every other failure is the
llamaroute error :func:`map_exception` gives. What the rows mean is read by
:func:`._price_reading.bedrock_prices` and :func:`._price_reading.bedrock_lifecycle`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ..._exceptions import ConfigurationError, MalformedResponseError, ProviderError
from ._mapping import NAME, map_exception
from ._setup import import_boto3

__all__ = [
    "LIFECYCLE_SOURCE",
    "PRICE_LIST_SOURCE",
    "PRICING_REGION",
    "fetch_bedrock_lifecycle",
    "fetch_bedrock_price_rows",
]

#: Where the ``pricing`` client is called by default (it exists in three regions only).
PRICING_REGION = "us-east-1"
#: The ``source`` written on the entries read from each API.
PRICE_LIST_SOURCE = "aws pricing:GetProducts ServiceCode=AmazonBedrock regionCode={region}"
LIFECYCLE_SOURCE = "aws bedrock:ListFoundationModels byProvider=meta ({region})"
#: A guard against a server that never stops paging.
MAX_PAGES = 200

_CREDENTIALS_HINT = (
    "no AWS credentials found: the Bedrock part of the refresh reads the AWS Price List API "
    "(pricing:GetProducts) and Bedrock's model list (bedrock:ListFoundationModels), which "
    "need credentials even though they are free. Set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or run with --only openrouter"
)


def _client(
    service: str, region: str, endpoint_url: str | None, timeout: float, session: Any | None
) -> Any:
    boto3 = import_boto3()
    from botocore.config import Config

    config = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        # One retry layer only (botocore's own retries off): a source that fails is reported, not
        # hammered.
        retries={"total_max_attempts": 1, "mode": "standard"},
        user_agent_extra="llamaroute-prices-refresh",
    )
    maker = session if session is not None else boto3.session.Session()
    return maker.client(service, region_name=region, endpoint_url=endpoint_url, config=config)


@contextmanager
def _aws_errors(what: str) -> Iterator[None]:
    try:
        yield
    except ProviderError:
        raise
    except Exception as error:
        import botocore.exceptions as bx

        if isinstance(error, bx.NoCredentialsError | bx.PartialCredentialsError):
            raise ConfigurationError(_CREDENTIALS_HINT) from None
        mapped = map_exception(error, model_id="")
        if mapped is None:
            raise
        mapped.message = f"{what}: {mapped.message}"
        mapped.args = (mapped.message,)
        raise mapped from None


def fetch_bedrock_price_rows(
    regions: Iterable[str],
    *,
    pricing_region: str = PRICING_REGION,
    endpoint_url: str | None = None,
    timeout: float = 30.0,
    session: Any | None = None,
) -> dict[str, list[str | dict[str, Any]]]:
    """Every ``AmazonBedrock`` Price List row for each region: the JSON strings as AWS sends
    them (kept unparsed, so that amounts stay exact when read)."""
    rows: dict[str, list[str | dict[str, Any]]] = {}
    with _aws_errors("AWS Price List"):
        client = _client("pricing", pricing_region, endpoint_url, timeout, session)
        for region in regions:
            found: list[str | dict[str, Any]] = []
            token: str | None = None
            for _ in range(MAX_PAGES):
                kwargs: dict[str, Any] = {
                    "ServiceCode": "AmazonBedrock",
                    "Filters": [{"Type": "TERM_MATCH", "Field": "regionCode", "Value": region}],
                    "FormatVersion": "aws_v1",
                    "MaxResults": 100,
                }
                if token:
                    kwargs["NextToken"] = token
                page = client.get_products(**kwargs)
                found.extend(i for i in page.get("PriceList", ()) if isinstance(i, str | dict))
                token = page.get("NextToken")
                if not token:
                    break
            else:
                raise MalformedResponseError(
                    f"AWS Price List: more than {MAX_PAGES} pages for {region}; stopped",
                    provider=NAME, model_id="",
                )  # fmt: skip
            rows[region] = found
    return rows


def fetch_bedrock_lifecycle(
    region: str = PRICING_REGION,
    *,
    endpoint_url: str | None = None,
    timeout: float = 30.0,
    session: Any | None = None,
) -> dict[str, Any]:
    """The ``ListFoundationModels`` answer for Meta's models in ``region``."""
    with _aws_errors("Bedrock ListFoundationModels"):
        client = _client("bedrock", region, endpoint_url, timeout, session)
        answer: dict[str, Any] = client.list_foundation_models(byProvider="meta")
    return answer
