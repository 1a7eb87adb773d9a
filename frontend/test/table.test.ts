// The table's own helpers: the # column, the score bars, keyboard navigation.
import assert from "node:assert/strict";
import { test } from "node:test";
import { FALLBACK } from "../src/definitions";
import { filterRows, sortRows, type Filters } from "../src/store";
import { rowAfterKey, scoreBarPercent, shownRanks } from "../src/views/table";
import { DEFAULT_STATE } from "../src/viewstate";
import { ranking } from "./fixtures";

const defaults: Filters = DEFAULT_STATE;

test("shownRanks: the # column counts only the shown rows, 1, 2, 3, ... in the server's order", () => {
  const r = ranking([
    { tag: "conv1/kernel/gradient", role: "gradient" },
    { tag: "conv1/kernel" },
    { tag: "dense/act", role: "activation" },
    { run: "b", tag: "conv2/kernel" },
    { tag: "conv2/kernel" },
  ]);
  const shown = filterRows(r, { ...defaults, hidden: ["b"] });
  const ranks = shownRanks(shown);
  assert.deepEqual(shown.map((row) => [row.tag, row.rank, ranks.get(row)]), [["conv1/kernel", 2, 1], ["conv2/kernel", 5, 2]]);
  // Sorted by another column, each row keeps its number.
  const byTag = sortRows(shown, "tag", true, FALLBACK.statuses);
  assert.deepEqual(byTag.map((row) => ranks.get(row)), [2, 1]);
});

test("scoreBarPercent: log positions between the smallest and largest positive score", () => {
  const scale = scoreBarPercent(ranking([{ score: 1e-6 }, { score: 1e-2 }, { score: 0 }, { score: null }]).rows);
  assert.equal(scale(1e-6), 6);
  assert.equal(scale(1e-2), 100);
  assert.equal(scale(1e-4), 53);
  assert.equal(scale(0), 0);
  assert.equal(scale(null), 0);
  assert.equal(scoreBarPercent(ranking([{ score: 3e-3 }]).rows)(3e-3), 100);
  assert.equal(scoreBarPercent([])(1), 0);
});

test("rowAfterKey: arrows, Home/End, pages, Enter on the focused row only", () => {
  assert.equal(rowAfterKey("ArrowDown", -1, 5), 0);
  assert.equal(rowAfterKey("ArrowDown", 4, 5), 4);
  assert.equal(rowAfterKey("ArrowUp", 0, 5), 0);
  assert.equal(rowAfterKey("ArrowUp", 3, 5), 2);
  assert.equal(rowAfterKey("Home", 3, 5), 0);
  assert.equal(rowAfterKey("End", 0, 5), 4);
  assert.equal(rowAfterKey("PageDown", 2, 30), 12);
  assert.equal(rowAfterKey("PageUp", 5, 30), 0);
  assert.equal(rowAfterKey("Enter", 2, 5), 2);
  assert.equal(rowAfterKey("Enter", -1, 5), null);
  assert.equal(rowAfterKey("a", 1, 5), null);
  assert.equal(rowAfterKey("ArrowDown", -1, 0), null);
});
