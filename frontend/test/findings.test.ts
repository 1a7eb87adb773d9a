// The findings view's own helper: findings grouped by run, each with the row a click selects.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { findingsByRun } from "../src/views/findings";
import { finding, layer, ranking } from "./fixtures";

describe("findings", () => {
  const r = ranking(
    [
      { run: "a", tag: "conv1/kernel", layer: "conv1" },
      { run: "a", tag: "conv2/kernel/gradient", layer: "conv2", role: "gradient" },
      { run: "a", tag: "conv3/kernel", layer: "conv3" },
      { run: "b", tag: "conv1/kernel", layer: "conv1" },
    ],
    {
      runs: ["a", "b"],
      layers: [layer({ run: "a", layer: "conv3", tag: "conv3/kernel" })],
      findings: [
        finding({ kind: "stagnant", tags: ["gone/kernel", "conv2/kernel/gradient"], layers: ["conv2"] }),
        finding({ kind: "frozen", tags: [], layers: ["conv3"] }),
        finding({ kind: "histogram_blind", tags: ["nowhere"], layers: ["nowhere"] }),
      ],
    },
  );

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
