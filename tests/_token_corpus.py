"""The token-accuracy corpus: prompts of many kinds, written for llamaroute's tests.

``tests/data/tokens/<kind>.txt`` holds blocks separated by ``~~~`` lines. The prompts of a kind
are each block, each pair of neighbouring blocks, and each block's first line when it is at
least 20 characters: lengths from about 20 to 2,000 characters.
"""

from __future__ import annotations

import itertools
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "data" / "tokens"


def kinds() -> list[str]:
    """The kinds of text in the corpus (file stems), sorted."""
    return sorted(path.stem for path in CORPUS.glob("*.txt"))


def prompts(kind: str) -> list[str]:
    """The prompts of one kind."""
    text = (CORPUS / f"{kind}.txt").read_text(encoding="utf-8")
    blocks = [block.strip("\n") for block in text.split("\n~~~\n") if block.strip()]
    pairs = [f"{a}\n\n{b}" for a, b in itertools.pairwise(blocks)]
    firsts = [block.split("\n")[0] for block in blocks]
    firsts = [line for line in firsts if len(line) >= 20 and line not in blocks]
    return blocks + pairs + firsts
