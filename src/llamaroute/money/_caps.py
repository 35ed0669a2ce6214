"""Upper bounds for budgets that are caps: what a request can cost at most, before it is sent.

An estimate may be low (an emoji is 2 to 15 tokens, and our fast count guesses); a reservation
must not be. Every Llama 3 token covers at least one UTF-8 byte of the text it encodes (the
BPE vocabulary is made of byte sequences, and the special tokens only come from the chat
template), so the UTF-8 length of a prompt bounds its token count from above whatever the
script, emoji included. To that come the chat template (Meta's header tokens per message,
plus the system block that the Hugging Face template of Llama 3.2 adds, about 25 tokens: the
catalog's ``template_tokens``), each image's tokens at the price entry's high bound, and every
output token ``max_tokens`` (or the route) allows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from ..catalog import Price, Route
from ._cost import tokens_cost
from ._tokens import image_token_range, prompt_token_ceiling

if TYPE_CHECKING:
    from .._request import ChatRequest

__all__ = [
    "TEMPLATE_CEILING_FIXED",
    "TEMPLATE_CEILING_PER_IMAGE",
    "TEMPLATE_CEILING_PER_MESSAGE",
    "TEMPLATE_CEILING_TOOLS",
    "prompt_token_ceiling",
    "request_token_ceiling",
    "worst_case_cost",
]

#: Tokens the chat template may add, at most: ``<|begin_of_text|>``, the reply header and a
#: system block with the knowledge-cutoff and date lines (about 25 tokens), with room to spare.
TEMPLATE_CEILING_FIXED = 64
#: Per message: ``<|start_header_id|>``, the role, ``<|end_header_id|>``, ``\n\n``, ``<|eot_id|>``.
TEMPLATE_CEILING_PER_MESSAGE = 8
#: Per image: the ``<|image|>`` tag (the image's own tokens are bounded by the price entry).
TEMPLATE_CEILING_PER_IMAGE = 2
#: With tools: the Llama 3.2 template's instructions ("Given the following functions, please
#: respond with a JSON for a function call ...", "Environment: ipython"; about 60 tokens in
#: the Hugging Face template), with room to spare. The tools themselves are bounded by the
#: bytes of their JSON as that template writes it (``tojson(indent=4)``).
TEMPLATE_CEILING_TOOLS = 256


def request_token_ceiling(request: ChatRequest) -> int:
    """At most how many prompt tokens ``request`` can be billed as, images' own tokens aside:
    every message's text (:func:`prompt_token_ceiling`), the tools' schemas and the conversation's
    tool calls, and the chat template's ceiling."""
    messages = request.messages
    # One pass over the messages; a text message (nearly all) is read without building its
    # text or its image tuple, and ASCII text is counted without encoding it.
    text, images, called = 0, 0, False
    for message in messages:
        content = message.content
        if type(content) is str:
            text += len(content) if content.isascii() else prompt_token_ceiling(content)
        else:
            text += prompt_token_ceiling(message.text)
            images += len(message.images)
        if message.tool_calls:
            called = True
    schema = request.response_format  # its instruction (or schema) is prompt too
    tools = 0
    if (request.tools or called) and request.tool_text:
        # Each tool as the template writes it, and the conversation's calls (indented too).
        written = json.dumps(json.loads(request.tool_text), indent=4, ensure_ascii=False)
        tools = prompt_token_ceiling(written) + TEMPLATE_CEILING_TOOLS
    return (
        tools
        + text
        + TEMPLATE_CEILING_FIXED
        + TEMPLATE_CEILING_PER_MESSAGE * len(messages)
        + TEMPLATE_CEILING_PER_IMAGE * images
        + (0 if schema is None else prompt_token_ceiling(schema.instruction()))
    )


def worst_case_cost(
    route: Route,
    price: Price,
    prompt_ceiling: int,
    image_tiles: Sequence[int],
    max_tokens: int | None,
) -> Decimal:
    """The most one attempt can cost on ``route`` at ``price``: the prompt at its ceiling (no
    more than the context window, which a longer prompt cannot pass), each image at the high
    end of the route's image billing (the padded 4 tiles, 6,404 tokens, unless the route or
    price entry says otherwise: :func:`~._tokens.image_token_range`) plus its per-image
    charge, and every output token the request (or else the route) allows."""
    _, _, image_tokens = image_token_range(route, price, image_tiles)
    prompt = min(prompt_ceiling + image_tokens, route.context_window)
    output = route.max_output_tokens or route.context_window
    if max_tokens is not None:
        output = min(output, max_tokens)
    input_cost, output_cost = tokens_cost(price, prompt, output, images=len(image_tiles))
    return input_cost + output_cost
