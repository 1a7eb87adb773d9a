// The tab's tag filter: the rule of the route and the CLI (tb_stagnation/tagfilter.py), case-insensitive,
// with their refusals and messages. tests/test_tag_filter.py runs both on one corpus of patterns.
import assert from "node:assert/strict";
import { test } from "node:test";
import { compileTagFilter, MAX_LENGTH } from "../src/tagfilter";

const UNBOUNDED =
  "tag regex with a quantified group holding a quantifier or alternation, or a backreference, could take unbounded time; simplify it";

test("no pattern, no filter", () => {
  assert.deepEqual(compileTagFilter(""), { re: null, error: null });
});

test("searched in the tag, case-insensitive", () => {
  const { re, error } = compileTagFilter("DENSE/k");
  assert.equal(error, null);
  assert.deepEqual(["dense/kernel", "model/Dense/Kernel", "conv1/kernel"].map((t) => re!.test(t)), [true, true, false]);
});

test("the route's refusals, in its words", () => {
  assert.deepEqual(compileTagFilter("a".repeat(MAX_LENGTH)).error, null);
  assert.equal(compileTagFilter("a".repeat(MAX_LENGTH + 1)).error, `tag regex longer than ${MAX_LENGTH} characters`);
  for (const p of ["(a+)+", "(a|aa)*", "(x*){2,}", "(a)\\1", "(?P<x>a)(?P=x)", "(?<x>a)\\k<x>"]) {
    assert.deepEqual(compileTagFilter(p), { re: null, error: UNBOUNDED }, p);
  }
});

test("syntax one engine reads and the other does not (or reads otherwise) is refused", () => {
  for (const p of ["(?<x>a)", "(?<=a)b", "\\cJ", "\\p{L}", "\\u{41}", "a{,2}", "[]a", "conv1(", "(?i)a", "\\Z"]) {
    const { re, error } = compileTagFilter(p);
    assert.equal(re, null, p);
    assert.match(error!, /^invalid tag regex: /, p);
  }
});
