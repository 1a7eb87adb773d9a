// The findings view's own helper: findings grouped by run, each with the row a click selects.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { findingsByRun } from "../src/views/findings";
import { twoRuns } from "./fixtures";

describe("findings", () => {
  const r = twoRuns();

  test("grouped by run in run order; a run without findings has an empty group", () => {
    const groups = findingsByRun(r, [])!;
    assert.deepEqual(groups.map((g) => [g.run, g.items.length]), [["a", 3], ["b", 0]]);
    assert.deepEqual(findingsByRun(r, ["a"])!.map((g) => g.run), ["b"]);
  });

  test("no findings field: null, not 'healthy'", () => {
    assert.equal(findingsByRun({ ...r, findings: null }, []), null);
  });

  test("target: the first tag that is a row of the run, else the first layer's main tag, else none", () => {
    const [byTag, byLayer, none] = findingsByRun(r, [])![0].items;
    assert.equal(byTag.target?.tag, "conv2/kernel/gradient");
    assert.equal(byLayer.target?.tag, "conv3/kernel");
    assert.equal(none.target, null);
  });

});
