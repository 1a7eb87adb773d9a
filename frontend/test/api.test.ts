// Parsing the server's JSON: missing fields tolerated, a number field a number or null.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseRanking, parseSeries } from "../src/api";
import { FALLBACK } from "../src/definitions";

test("an answer without findings or definitions: null findings, the fallback vocabulary", () => {
  const r = parseRanking({ ratio: 0.01, runs: ["b"], rows: [{ run: "a", tag: "t", score: null, net: 0.5 }] });
  assert.equal(r.findings, null);
  assert.deepEqual(r.definitions, FALLBACK);
  assert.deepEqual(r.runs, ["a", "b"]);
  assert.deepEqual([r.rows[0].score, r.rows[0].net, r.rows[0].samples], [null, 0.5, null]);
  assert.equal(r.rows[0].axis, "step");
  assert.equal(r.rows[0].rank, 1);
});

test("definitions and findings as sent; a missing definitions field falls back alone", () => {
  const r = parseRanking({
    rows: [],
    findings: [{ run: "a", kind: "frozen", tags: ["x/kernel"], layers: ["x"], since_step: null, message: "x is frozen." }],
    definitions: { statuses: [{ name: "moving", meaning: "moves" }], parameter_roles: ["weight"], default_ratio: 0.02 },
  });
  // units and unit_count (dead_units only) default to none.
  assert.deepEqual(r.findings, [{ run: "a", kind: "frozen", tags: ["x/kernel"], layers: ["x"], since_step: null, message: "x is frozen.", units: [], unit_count: 0 }]);
  assert.deepEqual(r.definitions.statuses, [{ name: "moving", meaning: "moves" }]);
  assert.deepEqual(r.definitions.parameter_roles, ["weight"]);
  assert.equal(r.definitions.default_ratio, 0.02);
  assert.deepEqual(r.definitions.roles, FALLBACK.roles);
});

test("a checkpoint-only series: no histograms, checkpoint data with its gaps and axis", () => {
  const s = parseSeries(
    {
      steps: [], rate: [], percentiles: { bps: [0], values: [] }, exact: null,
      thresholds: { histogram: null, checkpoint: 1e-4 },
      checkpoint: { steps: [0, 1, 2], update_ratio: [null, 0.01, 0], rms: [1, 1, 1], cosine: [null, null, -0.5], axis: "checkpoint" },
    },
    "r",
    "t",
  );
  assert.deepEqual(s.checkpoint, { steps: [0, 1, 2], update_ratio: [null, 0.01, 0], cosine: [null, null, -0.5], axis: "checkpoint", thinned: null });
  assert.equal(s.thresholds.checkpoint, 1e-4);
  assert.deepEqual([s.run, s.tag, s.steps.length, s.exact], ["r", "t", 0, null]);
});

test("thinned data: per run in the ranking, per source in a series, the flag from the definitions", () => {
  const r = parseRanking({
    rows: [],
    thinned: { a: { kept: 80, written: 160, series: 8 }, broken: { kept: "x" } },
    definitions: { keep_all_flag: "--samples_per_plugin stagnation=0", thinned: "kept fewer" },
  });
  assert.deepEqual(r.thinned, { a: { kept: 80, written: 160, series: 8 } });
  assert.deepEqual([r.definitions.keep_all_flag, r.definitions.thinned], ["--samples_per_plugin stagnation=0", "kept fewer"]);
  assert.deepEqual(parseRanking({ rows: [] }).thinned, {});
  const s = parseSeries(
    {
      steps: [], rate: [], percentiles: { bps: [0], values: [] },
      exact: { steps: [2], update_ratio: [1e-3], thinned: null },
      checkpoint: { steps: [10, 20], update_ratio: [null, 0], cosine: [null, null], thinned: { kept: 10, written: 20 } },
    },
    "r",
    "t",
  );
  assert.deepEqual([s.exact?.thinned, s.checkpoint?.thinned], [null, { kept: 10, written: 20 }]);
});
