"""The README says what is true: its commands print what it shows, its Python blocks run as
written against the fakes (the errors and values their comments name included), and its prose
sits outside code fences (issue 16, items 9 and 14)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n{title}\n")
    level = title.split(" ", 1)[0]
    following = re.search(rf"\n#{{1,{len(level)}}} ", README[start + len(title) + 2 :])
    end = start + len(title) + 2 + following.start() if following else len(README)
    return README[start:end]


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _env() -> dict[str, str]:
    src = str(ROOT / "src")
    env = {**os.environ, "NO_COLOR": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    return env


def test_the_workload_command_prints_what_the_readme_shows() -> None:
    section = _section("### A whole workload")
    [command] = _blocks(section, "bash")
    shown = _blocks(section, "text")[0]
    argv = shlex.split(command.strip())
    assert argv[:2] == ["llamaroute", "estimate"]
    done = subprocess.run([sys.executable, "-m", "llamaroute", *argv[1:]], capture_output=True,
                          text=True, timeout=60, cwd=ROOT, env=_env(), check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown


def _offline_env() -> dict[str, str]:
    env = {name: value for name, value in _env().items()
           if not name.startswith(("OPENROUTER_", "OLLAMA_", "AWS_"))}  # fmt: skip
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    return env


def _run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=cwd, env=_offline_env(), check=False)  # fmt: skip


def test_the_testing_block_runs_verbatim(tmp_path: Path) -> None:
    [block] = _blocks(_section("## Testing your app: `llamaroute.testing`"), "python")
    done = _run_python(block, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cut after 'Hel'" in done.stdout


def test_the_images_blocks_run_verbatim_and_their_comments_hold(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (4000, 3000), (200, 120, 40)).save(tmp_path / "photo.jpg")
    first, policy = _blocks(_section("## Images"), "python")
    done = _run_python(first + "\nprint((image.format, image.width, image.height), image.tiles)",
                       tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "('jpeg', 4000, 3000) 4"
    done = _run_python(policy + "\nprint(client)", tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "image_fetch=" in policy


def test_no_code_or_prose_is_on_the_wrong_side_of_a_fence() -> None:
    outside: list[str] = []
    fenced = False
    for line in README.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            outside.append(line)
    assert not fenced, "every fence is closed"
    code = re.compile(r"^(import \w|from [\w.]+ import |[a-z_]+ = [\w.]+\(|[a-z_]+\.[a-z_]+[(,])")
    assert [line for line in outside if code.match(line)] == []
    headings = [n for n, line in enumerate(outside) if re.match(r"#{1,4} ", line)]
    assert [outside[n] for n in headings if n and outside[n - 1]] == [], "blank line before"


def test_every_chat_response_field_is_documented() -> None:
    from llamaroute import ChatResponse

    section = _section("## Calling the models")
    bullet = section[section.index("returns a `ChatResponse`") :].split("\n- ", 1)[0]
    missing = [name for name in ChatResponse.model_fields if f"`{name}`" not in bullet]
    assert missing == []


def test_the_endpoint_variables_and_the_fetch_policy_are_documented() -> None:
    import inspect

    from llamaroute import Client

    assert "image_fetch" in inspect.signature(Client).parameters
    assert "`Client(image_fetch=...)`" in _section("### Image URLs")
    assert "$OPENROUTER_BASE_URL" in _section("### OpenRouter")
    assert "AWS_ENDPOINT_URL_BEDROCK_RUNTIME" in _section("### AWS Bedrock")


def test_what_the_bedrock_section_says_about_cost_is_true(tmp_path: Path) -> None:
    section = _section("### AWS Bedrock")
    assert "stays `None` until" not in section
    assert '`cost.source == "price_table"`' in section
    # Client() from the environment, pointed at the fake by boto3's own endpoint variable.
    script = """
import os
from llamaroute import Client
from llamaroute.testing import FakeBedrock

with FakeBedrock() as fake:
    os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = fake.url
    for region in ("us-east-1", "eu-west-1"):
        os.environ["AWS_REGION"] = region
        with Client() as client:
            reply = client.chat("llama-3.2-3b", "hi")
            print(region, reply.provider_model_id,
                  reply.cost.source if reply.cost else None, fake.hits)
"""
    env = {**_offline_env(), "AWS_ACCESS_KEY_ID": "readme-test", "AWS_SECRET_ACCESS_KEY": "x"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env=env, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "us-east-1 us.meta.llama3-2-3b-instruct-v1:0 price_table 1",
        "eu-west-1 eu.meta.llama3-2-3b-instruct-v1:0 price_table 2",
    ]


def test_the_openrouter_example_keeps_warnings_out_of_the_streamed_text() -> None:
    # stderr merged into stdout, as on a terminal: a warning logged while the answer streams
    # would sit between the text and the line after it.
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "chat_openrouter.py")],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=60, env=_offline_env(), check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Llamas hum to each other.\n-> finished: stop" in done.stdout
    assert "(llamaroute: openrouter:meta-llama/llama-3.2-1b-instruct reported" in done.stdout


def test_the_openai_messages_block_runs_unchanged(tmp_path: Path) -> None:
    # Client() from the environment, pointed at a fake OpenRouter: OpenRouter takes the https
    # image URL as it is, so nothing is fetched and nothing leaves 127.0.0.1.
    from llamaroute.testing import FakeOpenRouter, Step

    [block] = _blocks(_section("### OpenAI-style messages"), "python")
    assert "client.chat(model=" in block
    assert '"type": "image_url"' in block
    with FakeOpenRouter(Step.reply("A boardwalk through a green meadow.")) as fake:
        env = {**_offline_env(), "OPENROUTER_API_KEY": "readme-test",  # pragma: allowlist secret
               "OPENROUTER_BASE_URL": fake.base_url}  # fmt: skip
        done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path, env=env, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout == "A boardwalk through a green meadow.\n"
        system, user = fake.requests[0].json["messages"]
    assert system == {"role": "system", "content": "You are a helpful assistant."}
    assert user["content"][0] == {"type": "text", "text": "What's in this image?"}
    assert user["content"][1]["image_url"]["url"].startswith("https://upload.wikimedia.org/")


def test_the_several_deployments_block_runs_against_the_fakes(tmp_path: Path) -> None:
    [block] = _blocks(_section("## Several deployments"), "python")
    # The block as written, with the providers' own endpoint variables pointed at the fakes.
    script = f"""
import os
from llamaroute.testing import FakeBedrock, FakeOpenRouter

with FakeOpenRouter() as openrouter, FakeBedrock() as bedrock:
    os.environ["OPENROUTER_BASE_URL"] = openrouter.base_url
    os.environ["AWS_ENDPOINT_URL_BEDROCK_RUNTIME"] = bedrock.url
    exec({block!r})
    print(openrouter.hits, bedrock.hits)
"""
    env = {**_offline_env(), "OPENROUTER_KEY_A": "readme-a", "OPENROUTER_KEY_B": "readme-b",
           "AWS_ACCESS_KEY_ID": "readme-test", "AWS_SECRET_ACCESS_KEY": "x"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path, env=env, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["or-a", "eu-west", "1 1"]


# --- every Python block, against the fakes (issue 16, item 14) ---------------------------------

#: Run statement by statement: a statement whose comment names an error (``# UnknownModelError:
#: ...``) must raise it, and one whose comment is a quoted string (``# 'llama-3.2-3b'``) must
#: evaluate to it; every other statement must run.
_STATEMENTS = r"""
import ast, re, sys
source = sys.stdin.read()
lines = source.splitlines()
scope = {"__name__": "__main__"}
for node in ast.parse(source).body:
    comment = lines[node.end_lineno - 1].partition("  # ")[2]
    code = compile(ast.Module([node], []), "<readme>", "exec")
    error = re.match(r"(\w+Error)\b", comment)
    if error:
        try:
            exec(code, scope)
        except Exception as raised:
            assert type(raised).__name__ == error[1], (comment, raised)
            continue
        raise AssertionError(f"line {node.lineno} did not raise {error[1]}")
    if isinstance(node, ast.Expr) and re.fullmatch(r"'[^']*'", comment):
        value = eval(compile(ast.Expression(node.value), "<readme>", "eval"), scope)
        assert repr(value) == comment, (lines[node.lineno - 1], value)
        continue
    exec(code, scope)
"""

#: Blocks that continue an earlier one: what they take from it.
_CONTINUES = {
    "### Your own catalog entries": "import llamaroute",
    "### Structured output": "from llamaroute import Client\nclient = Client()",
}

#: Blocks run by a test of their own, with the one provider they are about.
_OWN_TEST = {
    "### OpenAI-style messages": "test_the_openai_messages_block_runs_unchanged",
}


def _python_blocks() -> list[tuple[str, str]]:
    """Every ```python block with the heading it sits under (headings inside fences, such as a
    TOML comment, do not count)."""
    found: list[tuple[str, str]] = []
    heading, fence, lines = "", "", []
    for line in README.splitlines():
        if fence:
            if line.startswith("```"):
                if fence == "python":
                    found.append((heading, "\n".join(lines) + "\n"))
                fence, lines = "", []
            else:
                lines.append(line)
        elif line.startswith("```"):
            fence = line[3:].strip() or "text"
        elif re.match(r"#{1,4} ", line):
            heading = line
    return found


_BLOCKS = _python_blocks()


def test_every_python_block_is_run_somewhere() -> None:
    headings = {heading for heading, _ in _BLOCKS}
    assert set(_CONTINUES) <= headings
    assert set(_OWN_TEST) <= headings
    assert all(name in globals() for name in _OWN_TEST.values())
    assert len(_BLOCKS) >= 19


@pytest.mark.parametrize(
    ("heading", "block"),
    _BLOCKS,
    ids=[f"{n}-{h.lstrip('# ')[:30]}" for n, (h, _) in enumerate(_BLOCKS)],
)
def test_every_python_block_runs_against_the_fakes(
    heading: str, block: str, tmp_path: Path
) -> None:
    from PIL import Image

    from llamaroute.testing import FakeBedrock, FakeOllama, FakeOpenRouter, Step

    if heading in _OWN_TEST:
        pytest.skip(f"run by {_OWN_TEST[heading]}")
    # The files the blocks name, in the directory they run in.
    (tmp_path / "examples").mkdir()
    for name in ("chart.png", "workload.jsonl"):
        (tmp_path / "examples" / name).write_bytes((ROOT / "examples" / name).read_bytes())
    for name in ("receipt.png", "photo.jpg", "chart.png"):
        Image.new("RGB", (800, 600), (200, 120, 40)).save(tmp_path / name)
    (tmp_path / "my-catalog.toml").write_text(
        '[[routes]]\nprovider = "ollama"\nmodel = "llama-3.2-3b"\n'
        'model_id = "llama3.2:3b-instruct-q8_0"\n'
    )
    # Every provider configured from the environment, each one a fake; the answer is a
    # receipt's JSON, which every block can print and the structured-output block parses.
    answer = Step.structured({"shop": "Llama Cafe", "total": 7.5})
    with (
        FakeOpenRouter(default=answer) as openrouter,
        FakeOllama(default=answer) as ollama,
        FakeBedrock(default=answer) as bedrock,
    ):
        env = {
            **_offline_env(),
            "HOME": str(tmp_path),
            "OPENROUTER_API_KEY": "readme-test",  # pragma: allowlist secret
            "OPENROUTER_BASE_URL": openrouter.base_url,
            "OPENROUTER_KEY_A": "readme-a",  # pragma: allowlist secret
            "OPENROUTER_KEY_B": "readme-b",  # pragma: allowlist secret
            "OLLAMA_HOST": ollama.url,
            "AWS_ACCESS_KEY_ID": "readme-test",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock.url,
        }
        source = _CONTINUES.get(heading, "") + "\n" + block
        done = subprocess.run([sys.executable, "-c", _STATEMENTS], input=source,
                              capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
                              check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_tools_block_runs_a_tool_round(tmp_path: Path) -> None:
    # The model calls the tool, then answers with its result: the block's loop, verbatim.
    from llamaroute.testing import FakeOpenRouter, Step

    [block, *_] = _blocks(_section("## Tools"), "python")
    first, then = Step.tool_call("get_weather", {"city": "Oslo"}), Step.reply("21 c in Oslo.")
    with FakeOpenRouter(first, then) as fake:
        env = {**_offline_env(), "OPENROUTER_API_KEY": "readme-test",  # pragma: allowlist secret
               "OPENROUTER_BASE_URL": fake.base_url}  # fmt: skip
        done = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path, env=env, check=False)  # fmt: skip
        sent = fake.requests[1].json["messages"][-1]
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "21 c in Oslo.\n"
    assert sent["role"] == "tool"
    assert sent["content"] == "21 c in Oslo"
