// The toolbar's own helpers: the role filter's choices, the status chips' counts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { FALLBACK } from "../src/definitions";
import type { Filters } from "../src/store";
import { roleOptions, statusCounts } from "../src/views/toolbar";
import { DEFAULT_STATE } from "../src/viewstate";
import { ranking } from "./fixtures";

const defaults: Filters = DEFAULT_STATE;

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

test("statusCounts counts under every filter but the status filter", () => {
  const r = ranking([
    { tag: "conv1/kernel", role: "weight" },
    { tag: "conv1/kernel/gradient", role: "gradient" },
    { tag: "bn1/moving_mean", role: "moving_stat" },
    { run: "b", tag: "Conv1/bias", role: "bias", status: "stagnant" },
  ]);
  const counts = statusCounts(r, { ...defaults, status: ["stagnant"] });
  assert.deepEqual([...counts], [["moving", 2], ["stagnant", 1]]);
});
