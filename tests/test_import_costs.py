"""Pricing and estimates keep `import llamaroute` cheap: no tokenizers, no Pillow, lazy data."""

from __future__ import annotations

import json
import subprocess
import sys


def test_import_loads_no_tokenizer_and_no_price_data() -> None:
    code = (
        "import json, sys, llamaroute; "
        "print(json.dumps([m for m in ('tokenizers', 'quicktok', 'PIL', 'llamaroute.cli._costs')"
        " if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout) == []


def test_an_estimate_without_images_never_imports_pillow() -> None:
    code = (
        "import sys, llamaroute; llamaroute.estimate('llama-3.2-1b', 'Hi'); "
        "print('PIL' in sys.modules, 'tokenizers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False False", out.stderr


def test_the_vocabulary_slice_loads_only_for_the_text_that_needs_it() -> None:
    # The slice is package data (_data/token_vocab.json): an audit hook sees each open.
    code = (
        "import sys; seen = []; "
        "sys.addaudithook(lambda e, a: seen.append(e == 'open' and 'token_vocab' in str(a[0]))); "
        "import llamaroute; from llamaroute.money import estimate_text_tokens; a = any(seen); "
        "estimate_text_tokens('Plain English words.'); b = any(seen); "
        "estimate_text_tokens('Привет, мир'); print(a, b, any(seen))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False False True", out.stderr
