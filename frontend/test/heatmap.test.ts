// The blocks x modules heatmap's layout: blocks in model order, a block's tensors as columns,
// one colour scale for every run, dead units from their findings.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Row } from "../src/api";
import { FALLBACK } from "../src/definitions";
import { blockLayout, heatmaps, moduleColumns, moduleRank } from "../src/views/heatmap";
import { finding, ranking } from "./fixtures";

const BLOCK = ["self_attn.q_proj.weight", "self_attn.v_proj.weight", "mlp.down_proj.weight", "input_layernorm.weight"];

/** A Llama-like run: embeddings, `blocks` blocks of BLOCK in model order, the final norm; scores from `score`. */
function llamaRows(run: string, blocks: number[], score: (block: number, module: string) => number | null): Partial<Row>[] {
  const rows: Partial<Row>[] = [{ run, tag: "model.embed_tokens.weight" }];
  for (const b of blocks) {
    for (const module of BLOCK) {
      const s = score(b, module);
      rows.push({ run, tag: `model.layers.${b}.${module}`, block: `model.layers.${b}`, module, score: s, status: s === 0 ? "frozen" : "moving" });
    }
  }
  rows.push({ run, tag: "model.norm.weight" });
  return rows.map((r, order) => ({ ...r, order }));
}

test("blockLayout: blocks in model order (not alphabetical), columns as a block holds its tensors", () => {
  const r = ranking(llamaRows("a", [0, 1, 2, 10], () => 1e-3));
  const { blocks, columns, grid } = blockLayout(r.rows.filter((row) => row.block !== null));
  assert.deepEqual(blocks, ["model.layers.0", "model.layers.1", "model.layers.2", "model.layers.10"]);
  assert.deepEqual(columns.map((c) => c.module), BLOCK);
  assert.deepEqual(grid[3].map((row) => row?.tag), BLOCK.map((m) => `model.layers.10.${m}`));
});

test("blockLayout: an adapter only some blocks have gets its column beside what it adapts, empty elsewhere", () => {
  const rows = ranking(llamaRows("a", [0, 1], () => 1e-3)).rows.filter((row) => row.block !== null);
  const adapter: Row = { ...rows[0], tag: "model.layers.1.self_attn.q_proj.lora_B.weight", module: "self_attn.q_proj.lora_B.weight", block: "model.layers.1", order: 6.5 };
  const { columns, grid } = blockLayout([...rows, adapter]);
  assert.deepEqual(columns.map((c) => c.label), ["q_proj", "q_proj.lora_B", "v_proj", "down_proj", "input_layernorm"]);
  assert.equal(grid[0][1], null);
  assert.equal(grid[1][1], adapter);
});

test("moduleRank: q/k/v/o, then gate/up/down, then the norms; adapters beside what they adapt", () => {
  const stored = [
    "input_layernorm.weight", "mlp.down_proj.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
    "post_attention_layernorm.weight", "self_attn.k_proj.weight", "self_attn.o_proj.weight",
    "self_attn.q_proj.lora_B.default.weight", "self_attn.q_proj.lora_A.default.weight", "self_attn.q_proj.weight",
    "self_attn.v_proj.weight",
  ]; // as a safetensors header lists them: alphabetically
  const rows = stored.map((module, order) => ({ ...ranking([{}]).rows[0], block: "model.layers.0", module, order }));
  const second = rows.map((r) => ({ ...r, block: "model.layers.1" }));
  assert.deepEqual(blockLayout([...rows, ...second]).columns.map((c) => c.label), [
    "q_proj", "q_proj.lora_A.default", "q_proj.lora_B.default", "k_proj", "v_proj", "o_proj",
    "gate_proj", "up_proj", "down_proj", "input_layernorm", "post_attention_layernorm",
  ]);
  // An adapter imported as one row per adapted module (role adapter) sits beside its base.
  assert.deepEqual(["self_attn.v_proj.weight", "self_attn.q_proj.lora", "self_attn.q_proj.weight"].sort((a, b) => moduleRank(a) - moduleRank(b)), [
    "self_attn.q_proj.weight", "self_attn.q_proj.lora", "self_attn.v_proj.weight",
  ]);
  // GPT-2: the fused attention projection first, a bias after its weight, attention's output
  // projection (no kind of its own) with the rest of attention, then the MLP, then the norms.
  const gpt2 = ["ln_1.weight", "attn.c_attn.bias", "attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"];
  const gptRows = gpt2.map((module, order) => ({ ...ranking([{}]).rows[0], block: "transformer.h.0", module, order }));
  assert.deepEqual(blockLayout([...gptRows, ...gptRows.map((r) => ({ ...r, block: "transformer.h.1" }))]).columns.map((c) => c.module), [
    "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight", "ln_1.weight",
  ]);
});

test("moduleColumns: group and label from the module's name; labels that would clash keep the whole name", () => {
  assert.deepEqual(moduleColumns(["self_attn.q_proj.weight", "input_layernorm.weight", "attn.c_attn.bias"]), [
    { module: "self_attn.q_proj.weight", group: "self_attn", label: "q_proj" },
    { module: "input_layernorm.weight", group: "", label: "input_layernorm" },
    { module: "attn.c_attn.bias", group: "attn", label: "c_attn.bias" },
  ]);
  assert.deepEqual(moduleColumns(["dense/kernel", "dense/kernel/x"]).map((c) => c.label), ["dense", "kernel/x"]);
  assert.deepEqual(moduleColumns(["mlp.fc.weight", "mlp.fc.kernel"]).map((c) => c.label), ["mlp.fc.weight", "mlp.fc.kernel"]);
});

test("heatmaps: runs with repeated blocks only, hidden runs left out, one log scale across runs", () => {
  const rows = [
    ...llamaRows("frozen", [0, 1, 2], (b) => (b === 0 ? 0 : 1e-4)),
    ...llamaRows("healthy", [0, 1, 2], () => 1e-2),
    ...llamaRows("one_block", [0], () => 1e-3),
    { run: "cnn", tag: "conv1/kernel" },
  ];
  const r = ranking(rows, {
    findings: [finding({ run: "healthy", kind: "dead_units", tags: ["model.layers.1.mlp.down_proj.weight"], units: [0, 1, 2], unit_count: 32 })],
  });
  const { maps, scale } = heatmaps(r, [], FALLBACK.parameter_roles);
  assert.deepEqual(maps.map((m) => m.run), ["frozen", "healthy"]);
  assert.deepEqual(scale, { lo: 1e-4, hi: 1e-2 });
  const [frozen, healthy] = maps;
  assert.deepEqual(frozen.cells[0].map((c) => [c?.row.status, c?.level]), BLOCK.map(() => ["frozen", null]));
  assert.deepEqual(frozen.cells[1].map((c) => c?.level), BLOCK.map(() => 0));
  assert.deepEqual(healthy.cells[1].map((c) => c?.level), BLOCK.map(() => 1));
  assert.deepEqual(healthy.cells[1][2]?.dead, { units: [0, 1, 2], count: 32 });
  assert.equal(healthy.cells[0][2]?.dead, null);
  assert.deepEqual(heatmaps(r, ["frozen"], FALLBACK.parameter_roles).maps.map((m) => m.run), ["healthy"]);
  // Gradients are not parameters: no heatmap of them.
  const grads = ranking(llamaRows("g", [0, 1], () => 1e-3).map((row) => ({ ...row, role: "gradient" })));
  assert.deepEqual(heatmaps(grads, [], FALLBACK.parameter_roles).maps, []);
});
