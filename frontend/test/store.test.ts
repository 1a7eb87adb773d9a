// The store: which rows show and in which order, the row at a selection, the filter change
// that shows a row, unchanged data kept across reloads.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { filterRows, filtersShowing, findRow, nextSort, reconcile, sortRows, type Filters } from "../src/store";
import { FALLBACK } from "../src/definitions";
import { DEFAULT_STATE } from "../src/viewstate";
import { finding, layer, ranking, twoRuns } from "./fixtures";

const defaults: Filters = DEFAULT_STATE;
const tags = (rows: { tag: string }[]) => rows.map((r) => r.tag);

describe("filterRows", () => {
  const r = ranking([
    { tag: "conv1/kernel", role: "weight" },
    { tag: "conv1/kernel/gradient", role: "gradient" },
    { tag: "bn1/moving_mean", role: "moving_stat" },
    { tag: "dense/act", role: "activation" },
    { run: "b", tag: "Conv1/bias", role: "bias", status: "stagnant" },
  ]);

  test("starts on the parameter roles the definitions name, gradients and activations hidden", () => {
    assert.deepEqual(tags(filterRows(r, defaults)), ["conv1/kernel", "bn1/moving_mean", "Conv1/bias"]);
  });

  test("parameter roles come from the server's definitions", () => {
    const weightsOnly = { ...r, definitions: { ...FALLBACK, parameter_roles: ["weight"] } };
    assert.deepEqual(tags(filterRows(weightsOnly, defaults)), ["conv1/kernel"]);
  });

  test("role all, one role, hidden runs, tag regex (case-insensitive), status", () => {
    assert.equal(filterRows(r, { ...defaults, role: "all" }).length, 5);
    assert.deepEqual(tags(filterRows(r, { ...defaults, role: "gradient" })), ["conv1/kernel/gradient"]);
    assert.deepEqual(tags(filterRows(r, { ...defaults, hidden: ["a"] })), ["Conv1/bias"]);
    assert.deepEqual(tags(filterRows(r, { ...defaults, role: "all", tag: "^conv1" })), ["conv1/kernel", "conv1/kernel/gradient", "Conv1/bias"]);
    assert.deepEqual(tags(filterRows(r, { ...defaults, status: ["stagnant"] })), ["Conv1/bias"]);
    assert.equal(filterRows(r, { ...defaults, status: ["stagnant"] }, true).length, 3);
  });

  test("a refused tag regex filters nothing (the toolbar says why)", () => {
    assert.equal(filterRows(r, { ...defaults, tag: "conv1(" }).length, 3);
    assert.equal(filterRows(r, { ...defaults, tag: "(a+)+" }).length, 3);
  });
});

describe("sortRows", () => {
  const r = ranking([
    { tag: "x", score: 2e-3, status: "moving", run: "b" },
    { tag: "y", score: null, status: "insufficient" },
    { tag: "z", score: 5e-4, status: "frozen" },
    { tag: "w", score: 2e-3, status: "stagnant" },
  ]);

  test("rank keeps the server's order; desc reverses it", () => {
    assert.deepEqual(tags(sortRows(r.rows, "rank", false, FALLBACK.statuses)), ["x", "y", "z", "w"]);
    assert.deepEqual(tags(sortRows(r.rows, "rank", true, FALLBACK.statuses)), ["w", "z", "y", "x"]);
  });

  test("numbers: a missing score sorts after every number, ties keep rank", () => {
    assert.deepEqual(tags(sortRows(r.rows, "score", false, FALLBACK.statuses)), ["z", "x", "w", "y"]);
  });

  test("status follows the definitions' order", () => {
    assert.deepEqual(tags(sortRows(r.rows, "status", false, FALLBACK.statuses)), ["z", "w", "x", "y"]);
    const reversed = [...FALLBACK.statuses].reverse();
    assert.deepEqual(tags(sortRows(r.rows, "status", false, reversed)), ["y", "x", "w", "z"]);
  });

  test("nextSort flips the same column, starts numbers largest first, names A to Z", () => {
    assert.deepEqual(nextSort({ sort: "rank", desc: false }, "rank"), { sort: "rank", desc: true });
    assert.deepEqual(nextSort({ sort: "rank", desc: false }, "score"), { sort: "score", desc: true });
    assert.deepEqual(nextSort({ sort: "score", desc: true }, "tag"), { sort: "tag", desc: false });
  });
});

describe("filtersShowing and findRow", () => {
  const r = twoRuns();

  test("filtersShowing changes only the filters that hide the row", () => {
    const target = r.rows[1]; // a gradient of run a
    assert.deepEqual(filtersShowing(defaults, r.rows[0], FALLBACK.parameter_roles), {});
    assert.deepEqual(filtersShowing(defaults, target, FALLBACK.parameter_roles), { role: "all" });
    assert.deepEqual(
      filtersShowing({ tag: "dense", role: "all", status: ["frozen"], hidden: ["a", "b"] }, target, FALLBACK.parameter_roles),
      { hidden: ["b"], tag: "", status: [] },
    );
    const shown = { tag: "CONV2", role: "gradient", status: ["moving"], hidden: ["b"] };
    assert.deepEqual(filtersShowing(shown, target, FALLBACK.parameter_roles), {});
  });

  test("findRow finds the selection or nothing", () => {
    assert.equal(findRow(r, ["b", "conv1/kernel"]), r.rows[3]);
    assert.equal(findRow(r, ["b", "conv3/kernel"]), null);
    assert.equal(findRow(r, null), null);
  });
});

describe("reconcile", () => {
  const before = ranking([{ tag: "a" }, { tag: "b" }], { layers: [layer()], findings: [finding()] });
  const copy = () => JSON.parse(JSON.stringify(before));

  test("an equal answer is the previous ranking itself", () => {
    assert.equal(reconcile(before, copy()), before);
    assert.equal(reconcile(null, before), before);
  });

  test("a changed row is new, every unchanged part keeps its identity", () => {
    const next = copy();
    next.rows[1].last_step = 100;
    const merged = reconcile(before, next);
    assert.notEqual(merged, before);
    assert.equal(merged.rows[0], before.rows[0]);
    assert.notEqual(merged.rows[1], before.rows[1]);
    assert.equal(merged.rows[1].last_step, 100);
    assert.equal(merged.layers, before.layers);
    assert.equal(merged.findings, before.findings);
    assert.equal(merged.definitions, before.definitions);
  });

  test("reordered rows are a new list of the same row objects", () => {
    const next = copy();
    next.rows.reverse();
    const merged = reconcile(before, next);
    assert.notEqual(merged.rows, before.rows);
    assert.equal(merged.rows[0], before.rows[1]);
  });
});
