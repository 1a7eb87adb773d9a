// The profile view's own helpers: one line per shown run, runs with the same layers on one chart.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { profileGroups, profileLines } from "../src/views/profile";
import { layer, ranking } from "./fixtures";

describe("profile", () => {
  const line = (run: string, names: string[]) => ({ run, points: names.map((n, i) => layer({ run, layer: n, order: i, tag: `${n}/kernel` })) });

  test("profileLines: shown runs with layers, in model order", () => {
    const r = ranking([{ run: "a" }, { run: "b" }, { run: "c" }], {
      layers: [layer({ run: "a", layer: "l2", order: 1 }), layer({ run: "a", layer: "l1", order: 0 }), layer({ run: "c", layer: "x" })],
    });
    assert.deepEqual(profileLines(r, []).map((l) => [l.run, l.points.map((p) => p.layer)]), [["a", ["l1", "l2"]], ["c", ["x"]]]);
    assert.deepEqual(profileLines(r, ["a"]).map((l) => l.run), ["c"]);
  });

  test("profileGroups: runs with the same layers share a chart, another architecture gets its own", () => {
    const groups = profileGroups([
      line("healthy", ["conv1", "conv2", "logits"]),
      line("vanishing", ["dense1", "dense2", "logits"]),
      line("frozen", ["conv1", "conv2", "logits"]),
      line("bn", ["conv1", "bn1", "conv2", "logits"]),
    ]);
    assert.deepEqual(
      groups.map((g) => [g.layers, g.lines.map((l) => l.run)]),
      [
        [["conv1", "conv2", "logits"], ["healthy", "frozen"]],
        [["dense1", "dense2", "logits"], ["vanishing"]],
        [["conv1", "bn1", "conv2", "logits"], ["bn"]],
      ],
    );
    assert.deepEqual(profileGroups([]), []);
  });

  test("profileGroups: the same layers in another order are another chart", () => {
    assert.equal(profileGroups([line("a", ["x", "y"]), line("b", ["y", "x"])]).length, 2);
  });
});
