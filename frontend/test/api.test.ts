// Parsing the server's JSON: missing fields tolerated, non-finite numbers kept.
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseRanking, parseSeries } from "../src/api";
import { FALLBACK } from "../src/definitions";

test("an answer without findings or definitions: null findings, the fallback vocabulary", () => {
  const r = parseRanking({ ratio: 0.01, runs: ["b"], rows: [{ run: "a", tag: "t", score: "NaN" }] });
  assert.equal(r.findings, null);
  assert.deepEqual(r.definitions, FALLBACK);
  assert.deepEqual(r.runs, ["a", "b"]);
  assert.ok(Number.isNaN(r.rows[0].score));
  assert.equal(r.rows[0].axis, "step");
  assert.equal(r.rows[0].rank, 1);
});

test("definitions and findings as sent; a missing definitions field falls back alone", () => {
  const r = parseRanking({
    rows: [],
    findings: [{ run: "a", kind: "frozen", tags: ["x/kernel"], layers: ["x"], since_step: null, message: "x is frozen." }],
    definitions: { statuses: [{ name: "moving", meaning: "moves" }], parameter_roles: ["weight"], default_ratio: 0.02 },
  });
  assert.deepEqual(r.findings, [{ run: "a", kind: "frozen", tags: ["x/kernel"], layers: ["x"], since_step: null, message: "x is frozen." }]);
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
  assert.deepEqual(s.checkpoint, { steps: [0, 1, 2], update_ratio: [null, 0.01, 0], cosine: [null, null, -0.5], axis: "checkpoint" });
  assert.equal(s.thresholds.checkpoint, 1e-4);
  assert.deepEqual([s.run, s.tag, s.steps.length, s.exact], ["r", "t", 0, null]);
});
