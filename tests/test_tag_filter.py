"""One tag filter rule in the tab, the ranking route and ``tb-stagnation --tag``.

The rule (tb_stagnation/tagfilter.py, frontend/src/tagfilter.ts): a regular
expression searched in tag names, case-insensitive, as TensorBoard's own tag
filters are; a pattern that could take unbounded time is refused, in the same
words everywhere. The tab filters in JavaScript, the route and the CLI in
Python, so the tab also refuses the syntax the two engines read differently.

- Both implementations on one corpus of thousands of generated patterns: the
  tab accepts none the route refuses, refuses by the shared rules in the
  route's words, and where both accept they find the same tags (``\\w``,
  ``\\b`` and ``\\d`` excepted on non-ASCII names: Unicode in Python, ASCII in
  JavaScript).
- One pattern through a real TensorBoard's route, the CLI, and the tab's own
  filter over that route's answer: the same rows; a refused one, the same
  message.

The tab's side runs under node (frontend/test/filter_probe.mjs), skipped with
a reason where node or npm is absent, as the frontend's unit tests are.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import urllib.parse
import warnings

import pytest
from test_cli import tb_stagnation
from test_frontend_store import FRONTEND, npm  # noqa: F401  (the fixture: node and node_modules)

from tb_stagnation import tagfilter

# Pieces patterns are drawn from: literals, every metacharacter, and the constructs the two
# engines read differently (named groups, look-behind, inline flags, escapes only one has).
PIECES = [
    *"aAbB.()[]{}*+?|\\^$-,:/<>=!P0129kcdDwWsSbBuUxpnt_ ",
    "(?", "(?:", "(?P<x>", "(?<x>", "(?<=", "(?<!", "(?=", "(?!", "(?i)", "\\d", "\\w", "\\b", "\\Z",
    "\\A", "{2}", "{1,3}", "{,2}", "[a-z]", "[^a]", "\\u0041", "\\x41", "\\k<x>", "\\p{L}", "\\cJ", "é", "É", "ſ", "K",
]
ASCII_TAGS = ["dense/kernel", "Dense/Kernel", "conv1/bias", "a", "A", "ab", "aB", "ba", "", "_", "x:y", "a-b",
              "P", "1", "0", "a{2}", "aa", "Z", "a b", "$", "[a]", "\\", "c", "x<y>z", "layer_12/w"]
OTHER_TAGS = ["é", "É", "K", "k", "s", "S", "ſ", "Ödem/Gewicht"]  # case folding beyond ASCII (K: Kelvin sign)
UNICODE_CLASSES = re.compile(r"\\[wWbBdD]")
RULES = ("tag regex longer", "tag regex with a quantified group")


def python_filter(pattern: str) -> tuple[re.Pattern | None, str | None]:
    """The route's and the CLI's reading of ``pattern``: (compiled, None) or (None, why refused)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "possible nested set": a hint, not a refusal
            return tagfilter.compile_tag_filter(pattern), None
    except tagfilter.TagFilterError as e:
        return None, e.reason


def tab(npm, request: dict):  # noqa: F811
    """The tab's filter (frontend/src/tagfilter.ts and store.filterRows) on ``request``, under node."""
    proc = subprocess.run(["node", "test/filter_probe.mjs"], cwd=FRONTEND, input=json.dumps(request),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_the_tab_accepts_no_pattern_the_route_refuses_and_reads_the_rest_alike(npm) -> None:  # noqa: F811
    rng = random.Random(19)
    generated = {"".join(rng.choice(PIECES) for _ in range(rng.randint(1, 8))) for _ in range(6000)}
    curated = ["dense", "DENSE/K", "^conv1", "kernel$", "(a+)+", "(a|aa)*", "(a)\\1", "x" * 257, "x" * 256,
               "(?P<x>a)(?P=x)", "(?<x>a)\\k<x>", "conv1(", "[]a", "\\Z", "(?i)dense", "ſ", "K", "é"]
    patterns = curated + sorted(generated)
    tags = ASCII_TAGS + OTHER_TAGS
    answers = tab(npm, {"patterns": patterns, "tags": tags})
    both, tab_stricter = 0, 0
    for pattern, answer in zip(patterns, answers):
        compiled, why = python_filter(pattern)
        if "matches" in answer:
            assert compiled is not None, f"the tab accepts {pattern!r}, the route refuses it: {why}"
            checked = tags if not UNICODE_CLASSES.search(pattern) else ASCII_TAGS
            python = [bool(compiled.search(t)) for t in checked]
            assert python == answer["matches"][: len(checked)], (pattern, [
                t for t, a, b in zip(checked, python, answer["matches"]) if a != b])
            both += 1
        elif why is not None and why.startswith(RULES):
            assert answer["error"] == why, pattern
        else:
            assert answer["error"].startswith("invalid tag regex: "), (pattern, answer)
            tab_stricter += compiled is not None
    # The corpus exercises both sides: a thousand and more read alike, and the dialect refusals refuse.
    assert both > 1000 and tab_stricter > 100, (both, tab_stricter)
    assert answers[1] == {"matches": [t.lower().find("dense/k") >= 0 for t in tags]}  # case-insensitive


@pytest.fixture(scope="module")
def served(writer_logs, start_tensorboard):
    """Every writer's log served by a real TensorBoard, and its root."""
    root = writer_logs["tf2"].parent
    return root, start_tensorboard(root)


@pytest.mark.parametrize("pattern", ["DENSE|Out/B", "^CONV1/", "kernel$", "nothing matches this"])
def test_one_pattern_shows_the_same_rows_in_the_tab_the_route_and_the_cli(served, npm, pattern) -> None:  # noqa: F811
    root, server = served
    status, route, _ = server.plugin("ranking?" + urllib.parse.urlencode({"tag": pattern}))
    assert status == 200
    proc = tb_stagnation(root, "--json", "--all-roles", "--tag", pattern)
    assert proc.returncode == 0, proc.stderr
    cli = json.loads(proc.stdout)
    _, everything, _ = server.plugin("ranking")
    shown = tab(npm, {"pattern": pattern, "ranking": everything})
    rows = {(r["run"], r["tag"]) for r in route["rows"]}
    assert rows == {(r["run"], r["tag"]) for r in cli["rows"]} == {tuple(r) for r in shown["rows"]}
    if pattern != "nothing matches this":
        assert rows and all(re.search(pattern, tag, re.IGNORECASE) for _, tag in rows)
    if pattern != pattern.lower():  # the tags are lower case: found only because case is ignored
        assert not any(re.search(pattern, tag) for _, tag in rows)


@pytest.mark.parametrize("pattern", ["(dense+)+", "x" * 257])
def test_a_refused_pattern_is_refused_in_the_same_words_everywhere(served, npm, pattern) -> None:  # noqa: F811
    root, server = served
    status, route, _ = server.plugin("ranking?" + urllib.parse.urlencode({"tag": pattern}))
    proc = tb_stagnation(root, "--tag", pattern)
    shown = tab(npm, {"pattern": pattern, "ranking": server.plugin("ranking")[1]})
    why = shown["error"]
    assert why and why.startswith(RULES)
    assert status == 400 and route["error"] == f"Invalid argument: {why}"
    assert proc.returncode == 2 and proc.stderr == f"tb-stagnation: --tag: {why}\n"
