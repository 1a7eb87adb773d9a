// Memoisation by identity, one level deep for plain objects.
import assert from "node:assert/strict";
import { test } from "node:test";
import { elide } from "../src/format";
import { lastCall, shallowEqual } from "../src/memo";

test("shallowEqual: identical, or plain objects with identical fields", () => {
  const list = [1];
  assert.ok(shallowEqual({ a: list, b: 1 }, { a: list, b: 1 }));
  assert.ok(!shallowEqual({ a: list }, { a: [1] }));
  assert.ok(!shallowEqual({ a: 1 }, { a: 1, b: undefined }));
  assert.ok(!shallowEqual([1], [1]));
});

test("lastCall answers from its last result while the arguments are equal", () => {
  let calls = 0;
  const f = lastCall((o: { n: number }, k: number) => ({ sum: o.n + k, call: ++calls }));
  const first = f({ n: 1 }, 2);
  assert.equal(f({ n: 1 }, 2), first);
  assert.equal(f({ n: 2 }, 2).sum, 4);
  assert.equal(calls, 2);
});

test("elide keeps both ends of a long name", () => {
  assert.equal(elide("conv1", 16), "conv1");
  assert.equal(elide("sequential/block_7/conv_b", 16), "sequenti…/conv_b");
});
