"""Fake provider servers for tests: yours and ours.

Each fake is a real HTTP server on 127.0.0.1 (a free port, in a thread) that speaks one
provider's wire format, answers from a script of :class:`Step` objects (successes, HTTP errors,
stream faults) and records every request it gets. Use them to test your own fallback setup
without network or credentials::

    from llamaroute import Client
    from llamaroute.providers import OpenRouterProvider
    from llamaroute.testing import FakeOpenRouter, Step

    with FakeOpenRouter(Step.error(503), Step.reply("Hello")) as fake:
        provider = OpenRouterProvider(api_key="sk-or-v1-test", base_url=fake.base_url)
        with Client(providers=[provider]) as client:
            ...
        assert fake.hits == 2

``FakeOllama`` does the same for a local Ollama server (``OllamaProvider(host=fake.url)``),
with ``/api/tags`` listing the models it has "pulled".
"""

from ._bedrock import FakeBedrock, RawReply
from ._ollama import FakeOllama
from ._openrouter import FakeOpenRouter
from ._script import RecordedRequest, Step, StreamPlan
from ._server import Exchange, FakeServer

__all__ = [
    "Exchange",
    "FakeBedrock",
    "FakeOllama",
    "FakeOpenRouter",
    "FakeServer",
    "RawReply",
    "RecordedRequest",
    "Step",
    "StreamPlan",
]
