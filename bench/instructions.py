"""Instructions per call, counted by callgrind: a figure the machine's other work cannot move.

    python bench/instructions.py ollama "ollama client" chat
    python bench/instructions.py ollama llamaroute chat
    python bench/instructions.py ollama llamaroute stream     # per stream of 50 chunks
    python bench/instructions.py bedrock "raw boto3" async    # 100 in flight, all threads
    python bench/instructions.py core llamaroute chat         # llamaroute alone: no socket

The subject ``core`` is ``bench/overhead.py``'s: a provider that answers at once, so the count
is only llamaroute's own work around a call (the mock server still starts, unused).

The subjects are ``bench/run.py``'s (``openrouter``, ``ollama`` or ``bedrock``; ``raw httpx``,
``raw boto3``, ``llamaroute``, ``ollama client``), against the mock server in its own process
(not counted). The subject runs under ``valgrind --tool=callgrind`` twice, making a warm-up
then ``--few`` or ``--many`` calls; the difference in instructions over the difference in
calls is the cost of one call, the start-up and warm-up cancelling out. Takes minutes (the
interpreter runs some 50 times slower under valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402


def core_subjects(url: str, peers: bool) -> list[run.Subject]:
    """llamaroute around a provider that answers at once (``bench/overhead.py``'s)."""
    from overhead import MODEL, PROMPT, Instant

    import llamaroute

    client = llamaroute.Client([Instant()])
    return [
        run.Subject(
            "llamaroute",
            lambda: client.chat(MODEL, PROMPT),
            lambda: client.stream(MODEL, PROMPT),
            None,
            [client.close],
        )
    ]


BUILDERS = {"openrouter": run.openrouter_subjects, "ollama": run.ollama_subjects,
            "bedrock": run.bedrock_subjects, "core": core_subjects}  # fmt: skip
WARM_UP = 20


def calls(url: str, provider: str, name: str, mode: str, count: int) -> None:
    """Run in the child, under valgrind: a warm-up, then ``count`` calls."""
    subject = {s.name: s for s in BUILDERS[provider](url, False)}[name]
    if mode == "async":
        assert subject.achat is not None
        achat = subject.achat

        from bedrock_async import burst

        async def main() -> None:
            await burst(achat, 200)
            await burst(achat, count)

        asyncio.run(main())
        return
    stream = subject.stream

    def one() -> Any:
        if mode == "chat":
            return subject.chat()
        assert stream is not None
        return list(stream())

    for _ in range(WARM_UP):
        one()
    for _ in range(count):
        one()


def counted(args: list[str]) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/out", *args],
            capture_output=True, text=True, check=True, env=os.environ,
        )  # fmt: skip
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(out.stderr[-2000:])
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("provider", choices=sorted(BUILDERS))
    parser.add_argument("subject")
    parser.add_argument("mode", choices=("chat", "stream", "async"))
    parser.add_argument("--few", type=int)
    parser.add_argument("--many", type=int)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the mock's URL, in the child
    args = parser.parse_args()
    few = args.few if args.few is not None else {"chat": 20, "stream": 5, "async": 100}[args.mode]
    many = args.many if args.many is not None else few * 6 if args.mode != "async" else 400
    if args.child:
        calls(args.child, args.provider, args.subject, args.mode, few)
        return
    # Bytecode first: otherwise the first child compiles the modules it imports (and writes
    # their .pyc), and the start-up no longer cancels out between the two counts.
    run.compile_llamaroute()
    mock = run.Mock()
    try:
        counts = [
            counted(
                [
                    run.PY,
                    __file__,
                    args.provider,
                    args.subject,
                    args.mode,
                    "--few",
                    str(n),
                    "--child",
                    mock.url,
                ]
            )
            for n in (few, many)
        ]
    finally:
        mock.stop()
    per = (counts[1] - counts[0]) / (many - few)
    unit = {"chat": "call", "stream": "stream", "async": "call"}[args.mode]
    print(f"{args.provider} {args.subject} {args.mode}: {per:,.0f} instructions a {unit} "
          f"({few} and {many}: {counts[0]:,} and {counts[1]:,})")  # fmt: skip


if __name__ == "__main__":
    main()
