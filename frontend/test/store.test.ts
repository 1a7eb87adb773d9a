// The store: which rows, findings and profile points show, in which order.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  filterRows, findingsByRun, keyTarget, nextSort, profileGroups, profileLines, reconcile, revealPatch,
  roleOptions, scoreScale, selectedRow, shownRanks, sortRows, statusCounts, tagFilter, type Filters,
} from "../src/store";
import { FALLBACK } from "../src/definitions";
import { DEFAULT_STATE } from "../src/viewstate";
import { finding, layer, ranking } from "./fixtures";

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

  test("an invalid regex filters nothing and says why", () => {
    assert.deepEqual(tagFilter("conv1("), { re: null, error: "invalid regex" });
    assert.equal(filterRows(r, { ...defaults, tag: "conv1(" }).length, 3);
  });

  test("statusCounts counts under every filter but the status filter", () => {
    const counts = statusCounts(r, { ...defaults, status: ["stagnant"] });
    assert.deepEqual([...counts], [["moving", 2], ["stagnant", 1]]);
  });
});

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

test("scoreScale: log positions between the smallest and largest positive score", () => {
  const scale = scoreScale(ranking([{ score: 1e-6 }, { score: 1e-2 }, { score: 0 }, { score: null }]).rows);
  assert.equal(scale(1e-6), 6);
  assert.equal(scale(1e-2), 100);
  assert.equal(scale(1e-4), 53);
  assert.equal(scale(0), 0);
  assert.equal(scale(null), 0);
  assert.equal(scoreScale(ranking([{ score: 3e-3 }]).rows)(3e-3), 100);
  assert.equal(scoreScale([])(1), 0);
});

test("roleOptions: parameters first, then all, then each role present with its count and meaning", () => {
  const definitions = { ...FALLBACK, roles: FALLBACK.roles.map((t) => ({ ...t, meaning: `means ${t.name}` })) };
  const r = ranking([{ role: "weight" }, { role: "gradient" }, { role: "gradient" }, { role: "mystery", run: "b" }], { definitions });
  const options = roleOptions(r, [], "params");
  assert.deepEqual(options.map((o) => [o.value, o.label]), [
    ["params", "parameters (1)"], ["all", "all (4)"], ["weight", "weight (1)"], ["gradient", "gradient (2)"], ["mystery", "mystery (1)"],
  ]);
  assert.equal(options[3].title, "means gradient");
  assert.equal(options[4].title, "");
  assert.deepEqual(roleOptions(r, ["b"], "bias").map((o) => o.value), ["params", "all", "weight", "bias", "gradient"]);
});

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

  test("revealPatch changes only the filters that hide the row", () => {
    const target = r.rows[1]; // a gradient of run a
    assert.deepEqual(revealPatch(defaults, r.rows[0], FALLBACK.parameter_roles), {});
    assert.deepEqual(revealPatch(defaults, target, FALLBACK.parameter_roles), { role: "all" });
    assert.deepEqual(
      revealPatch({ tag: "dense", role: "all", status: ["frozen"], hidden: ["a", "b"] }, target, FALLBACK.parameter_roles),
      { hidden: ["b"], tag: "", status: [] },
    );
    const shown = { tag: "CONV2", role: "gradient", status: ["moving"], hidden: ["b"] };
    assert.deepEqual(revealPatch(shown, target, FALLBACK.parameter_roles), {});
  });

  test("selectedRow finds the selection or nothing", () => {
    assert.equal(selectedRow(r, ["b", "conv1/kernel"]), r.rows[3]);
    assert.equal(selectedRow(r, ["b", "conv3/kernel"]), null);
    assert.equal(selectedRow(r, null), null);
  });
});

test("keyTarget: arrows, Home/End, pages, Enter on the focused row only", () => {
  assert.equal(keyTarget("ArrowDown", -1, 5), 0);
  assert.equal(keyTarget("ArrowDown", 4, 5), 4);
  assert.equal(keyTarget("ArrowUp", 0, 5), 0);
  assert.equal(keyTarget("ArrowUp", 3, 5), 2);
  assert.equal(keyTarget("Home", 3, 5), 0);
  assert.equal(keyTarget("End", 0, 5), 4);
  assert.equal(keyTarget("PageDown", 2, 30), 12);
  assert.equal(keyTarget("PageUp", 5, 30), 0);
  assert.equal(keyTarget("Enter", 2, 5), 2);
  assert.equal(keyTarget("Enter", -1, 5), null);
  assert.equal(keyTarget("a", 1, 5), null);
  assert.equal(keyTarget("ArrowDown", -1, 0), null);
});

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
