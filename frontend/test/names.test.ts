// Long names: the prefix every layer of a run shares dropped, the rest elided in the middle;
// dead units written as ranges.
import assert from "node:assert/strict";
import { test } from "node:test";
import { commonPrefix, prefixesByRun, shortName, unitRanges, withoutPrefix } from "../src/names";

const PEFT = [
  "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default",
  "base_model.model.model.layers.0.self_attn.q_proj",
  "base_model.model.model.embed_tokens",
  "base_model.model.lm_head",
];

test("commonPrefix: what every layer shares, up to a separator, never a whole layer's name", () => {
  assert.equal(commonPrefix(PEFT), "base_model.model.");
  assert.equal(commonPrefix(["functional/dense_1", "functional/dense_2"]), "functional/");
  assert.equal(commonPrefix(["model.embed_tokens", "model.layers.0.mlp", "lm_head"]), "");
  // A layer named like the prefix keeps its own name: the cut goes before it.
  assert.equal(commonPrefix(["model.layers", "model.layers.0.mlp"]), "model.");
  // One layer (however many tags): its name is all there is to show.
  assert.equal(commonPrefix(["model.layers.0.mlp", "model.layers.0.mlp"]), "");
  assert.equal(commonPrefix(["conv1", "conv2"]), "");
  assert.equal(commonPrefix([]), "");
});

test("prefixesByRun: per run, only runs that have one, never into a block's container", () => {
  const rows = [
    ...PEFT.map((layer) => ({ run: "lora", layer, block: null })),
    { run: "cnn", layer: "conv1", block: null },
    { run: "cnn", layer: "conv2", block: null },
  ];
  assert.deepEqual([...prefixesByRun(rows)], [["lora", "base_model.model."]]);
  // Adapters only: their layers share "base_model.model.model.layers.", but the blocks keep their name.
  const adapters = [0, 1].map((i) => ({
    run: "a", layer: `base_model.model.model.layers.${i}.self_attn.q_proj`, block: `base_model.model.model.layers.${i}`,
  }));
  assert.deepEqual([...prefixesByRun(adapters)], [["a", "base_model.model.model."]]);
  assert.deepEqual([...prefixesByRun(adapters.map((r) => ({ ...r, block: null })))], [["a", "base_model.model.model.layers."]]);
});

test("shortName: prefix dropped, middle elided, short names untouched", () => {
  assert.equal(shortName("base_model.model.lm_head.weight", "base_model.model."), "lm_head.weight");
  assert.equal(shortName("conv1/kernel", ""), "conv1/kernel");
  assert.equal(shortName("other.weight", "base_model.model."), "other.weight");
  const long = shortName("base_model.model.model.layers.12.self_attn.q_proj.lora_A.default.weight", "base_model.model.", 30);
  assert.equal(long.length, 30);
  assert.equal(long, "model.layers.12…ora_A.default.weight".slice(0, 15) + "…" + "model.layers.12.self_attn.q_proj.lora_A.default.weight".slice(-14));
});

test("withoutPrefix: the prefix dropped where it starts a name in a sentence, nowhere else", () => {
  assert.equal(
    withoutPrefix("base_model.model.model.layers.0-1: all 18 tensors never changed (base_model.model.lm_head moves)", "base_model.model."),
    "model.layers.0-1: all 18 tensors never changed (lm_head moves)",
  );
  assert.equal(withoutPrefix("x.base_model.model.y stays", "base_model.model."), "x.base_model.model.y stays");
  assert.equal(withoutPrefix("unchanged", ""), "unchanged");
});

test("unitRanges: consecutive units as ranges, the rest counted", () => {
  const embedding = [...Array.from({ length: 4 }, (_, i) => i), ...Array.from({ length: 56 }, (_, i) => 200 + i)];
  assert.equal(unitRanges(embedding), "0-3, 200-255");
  assert.equal(unitRanges([5]), "5");
  assert.equal(unitRanges([1, 3, 4, 9]), "1, 3-4, 9");
  assert.equal(unitRanges([]), "");
  assert.equal(unitRanges([0, 2, 4, 6, 7, 8], 2), "0, 2, and 4 more");
});
