// The view state's URL form.
import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeState, DEFAULT_STATE, encodeState, type ViewState } from "../src/viewstate";

test("the default state writes no keys and reads back from none", () => {
  assert.deepEqual(encodeState(DEFAULT_STATE), {});
  assert.deepEqual(decodeState({}), DEFAULT_STATE);
});

test("every field round-trips, names with commas and quotes included", () => {
  const s: ViewState = {
    tag: "conv|dense", role: "all", status: ["frozen", "stagnant"], hidden: ['run "a", 1'],
    sel: ["run,b", "<img src=x>"], sort: "score", desc: true, ratio: 0.05,
  };
  assert.deepEqual(decodeState(encodeState(s)), s);
});

test("the role filter defaults to parameters", () => {
  assert.equal(decodeState({ tag: "x" }).role, "params");
  assert.equal(encodeState({ ...DEFAULT_STATE, role: "all" }).role, "all");
});

test("damaged or unknown keys keep their defaults", () => {
  const s = decodeState({ hide: "[oops", sel: '["only one"]', sort: "-nonsense", ratio: "2" });
  assert.deepEqual(s, DEFAULT_STATE);
  assert.equal(decodeState({ ratio: "-1" }).ratio, null);
});
