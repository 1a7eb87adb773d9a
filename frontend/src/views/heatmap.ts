// Blocks x modules: for a run of repeated blocks (a transformer's model.layers.N), one row per
// block in model order, one column per tensor of a block (q/k/v/o, gate/up/down, the norms, the
// adapters), colour = log movement. Frozen blocks, a frozen MLP, dead units, one slow projection
// stand out at a glance where the table lists 9 tensors per block. A click selects the tensor,
// as a click on its row does.
import type { Finding, Ranking, Row } from "../api";
import { h } from "../dom";
import { elide, fmt } from "../format";
import { shortName, unitRanges } from "../names";
import { HEAT_STOPS, heatColour, runColour } from "../palette";
import { shownRuns } from "../store";
import type { Selection } from "../viewstate";
import { runLabel } from "./parts";

export interface HeatColumn {
  /** The tensor's name inside its block (the row's `module`). */
  module: string;
  /** What the column header says: the module without its group and a trailing "weight". */
  label: string;
  /** The module's first part when it has one to spare ("self_attn", "mlp"): a header over its columns. */
  group: string;
}

/** Dead units of a tensor, from its `dead_units` finding. */
export interface DeadUnits {
  units: number[];
  count: number;
}

export interface HeatCell {
  row: Row;
  /** Position of log10(score) between the heatmaps' smallest and largest positive score, 0..1; null: no positive score. */
  level: number | null;
  dead: DeadUnits | null;
}

export interface Heatmap {
  run: string;
  /** Block names in model order. */
  blocks: string[];
  columns: HeatColumn[];
  /** cells[block][column]; null where a block lacks that tensor. */
  cells: (HeatCell | null)[][];
}

export interface HeatScale {
  lo: number | null;
  hi: number | null;
}

const WEIGHT_NAMES = new Set(["weight", "kernel"]);

/**
 * Module kinds in the order a reader expects them, whatever order a checkpoint stores them in
 * (safetensors: alphabetically): attention's q/k/v/o, the MLP's gate/up/down, then the norms.
 * The first part of a module's name that names a kind decides; others keep their place after the MLP.
 */
const KINDS: [RegExp, number][] = [
  [/^(q|q_proj|query|wq)$/i, 0],
  [/^(qkv|qkv_proj|c_attn|wqkv|in_proj)$/i, 0.5],
  [/^(k|k_proj|key|wk)$/i, 1],
  [/^(v|v_proj|value|wv)$/i, 2],
  [/^(o|o_proj|out_proj|wo)$/i, 3],
  [/^(gate_proj|w1|gate)$/i, 10],
  [/^(up_proj|w3|fc1|c_fc|up)$/i, 11],
  [/^(down_proj|w2|fc2|down)$/i, 12],
  [/norm|^ln/i, 30],
];
const OTHER_KIND = 20;
/** An adapter sits right after the tensor it adapts; a bias after its weight. */
const BESIDE: [RegExp, number][] = [[/^lora$/i, 0.2], [/^lora_a$/i, 0.2], [/^lora_b$/i, 0.3], [/^bias$/i, 0.1]];

/** Where a module goes among a block's columns (see KINDS). */
export function moduleRank(module: string): number {
  const parts = module.split(module.includes("/") ? "/" : ".");
  const kind = parts.reduce<number | null>((found, part) => found ?? KINDS.find(([re]) => re.test(part))?.[1] ?? null, null);
  const beside = parts.reduce((sum, part) => sum + (BESIDE.find(([re]) => re.test(part))?.[1] ?? 0), 0);
  return (kind ?? OTHER_KIND) + beside;
}

/**
 * One heatmap per shown run with at least two repeated blocks: the parameter rows that name a
 * `block` and `module`. Blocks in model order (the rows' `order`); columns by module kind
 * (moduleRank; a group's columns together), then in the order a block holds its tensors (mean position inside their blocks,
 * so a module only some blocks have still lands beside its neighbours). The colour scale spans
 * every heatmap, so runs compare.
 */
export function heatmaps(ranking: Ranking, hidden: readonly string[], params: readonly string[]): { maps: Heatmap[]; scale: HeatScale } {
  const dead = deadUnits(ranking.findings);
  const layouts = shownRuns(ranking.runs, hidden).flatMap((run) => {
    const rows = ranking.rows.filter((r) => r.run === run && r.block !== null && r.module !== null && params.includes(r.role));
    const layout = blockLayout(rows);
    return layout.blocks.length >= 2 ? [{ run, ...layout }] : [];
  });
  const scores = layouts.flatMap((l) => l.grid.flat().flatMap((r) => (r && r.score !== null && r.score > 0 ? [r.score] : [])));
  const lo = scores.length ? Math.min(...scores) : null;
  const hi = scores.length ? Math.max(...scores) : null;
  const level = (score: number | null): number | null => {
    if (score === null || score <= 0 || lo === null || hi === null) return null;
    const span = Math.log10(hi) - Math.log10(lo);
    return span < 1e-9 ? 1 : (Math.log10(score) - Math.log10(lo)) / span;
  };
  const maps = layouts.map(({ run, blocks, columns, grid }) => ({
    run,
    blocks,
    columns,
    cells: grid.map((cells) => cells.map((row) => row && { row, level: level(row.score), dead: dead.get(key(run, row.tag)) ?? null })),
  }));
  return { maps, scale: { lo, hi } };
}

/** One run's blocks (model order), columns (by kind, then as the blocks hold them) and rows by [block][column]. */
export function blockLayout(rows: readonly Row[]): { blocks: string[]; columns: HeatColumn[]; grid: (Row | null)[][] } {
  const byBlock = new Map<string, Row[]>();
  for (const r of [...rows].sort((a, b) => a.order - b.order)) {
    const list = byBlock.get(r.block!);
    if (list) list.push(r);
    else byBlock.set(r.block!, [r]);
  }
  const position = new Map<string, number[]>();
  for (const list of byBlock.values()) {
    list.forEach((r, i) => {
      const at = position.get(r.module!);
      const p = i / Math.max(1, list.length - 1);
      if (at) at.push(p);
      else position.set(r.module!, [p]);
    });
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  // A group's columns stay together, placed by its first kind: GPT-2's attn.c_proj (attention's
  // output, no kind of its own) stays with attn.c_attn, before the MLP.
  const groupRank = new Map<string, number>();
  const unsorted = moduleColumns([...position.keys()]);
  for (const c of unsorted) if (c.group) groupRank.set(c.group, Math.min(groupRank.get(c.group) ?? Infinity, moduleRank(c.module)));
  const sortKey = (c: HeatColumn) => [c.group ? groupRank.get(c.group)! : moduleRank(c.module), moduleRank(c.module), mean(position.get(c.module)!)];
  const columns = unsorted.sort((a, b) => {
    const [ka, kb] = [sortKey(a), sortKey(b)];
    return ka[0] - kb[0] || ka[1] - kb[1] || ka[2] - kb[2] || a.module.localeCompare(b.module);
  });
  const modules = columns.map((c) => c.module);
  const blocks = [...byBlock.keys()];
  const grid = blocks.map((b) => {
    const inBlock = new Map(byBlock.get(b)!.map((r) => [r.module!, r]));
    return modules.map((m) => inBlock.get(m) ?? null);
  });
  return { blocks, columns, grid };
}

/**
 * Column headers: "self_attn.q_proj.weight" -> group "self_attn", label "q_proj"; a module of
 * one part besides its "weight" ("input_layernorm.weight") has no group. Where two labels
 * would read the same, both columns keep their whole module name.
 */
export function moduleColumns(modules: readonly string[]): HeatColumn[] {
  const parsed = modules.map((module) => {
    const sep = module.includes("/") ? "/" : ".";
    const parts = module.split(sep);
    if (parts.length > 1 && WEIGHT_NAMES.has(parts[parts.length - 1])) parts.pop();
    const group = parts.length > 1 ? parts.shift()! : "";
    return { module, group, label: parts.join(sep) };
  });
  const seen = new Map<string, number>();
  for (const p of parsed) seen.set(p.group + "\u0000" + p.label, (seen.get(p.group + "\u0000" + p.label) ?? 0) + 1);
  return parsed.map((p) => (seen.get(p.group + "\u0000" + p.label)! > 1 ? { ...p, label: p.module } : p));
}

/** (run, tag) -> its dead units, from the `dead_units` findings (each names its tensor first). */
export function deadUnits(findings: readonly Finding[] | null): Map<string, DeadUnits> {
  const out = new Map<string, DeadUnits>();
  for (const f of findings ?? []) {
    if (f.kind !== "dead_units" || !f.units.length) continue;
    for (const tag of f.tags) out.set(key(f.run, tag), { units: f.units, count: f.unit_count });
  }
  return out;
}

const key = (run: string, tag: string) => `${run}\u0000${tag}`;

export interface HeatmapProps {
  maps: readonly Heatmap[];
  scale: HeatScale;
  runs: readonly string[];
  sel: Selection | null;
  /** run -> the prefix every layer of it shares, left out of the block names shown. */
  prefixes: ReadonlyMap<string, string>;
  on: { select(row: Row, reveal: "charts"): void };
}

export function heatmapView(p: HeatmapProps): HTMLElement {
  return h(
    "section",
    { class: "stg-card", "aria-label": "Blocks by module" },
    h("div", { class: "stg-chart-title" }, "Blocks × modules"),
    h(
      "p",
      { class: "stg-chart-cap" },
      "One row per repeated block, in model order; one column per tensor of a block. Colour: movement per step (log scale, the same for every run). Click a cell to see its tensor's charts.",
    ),
    h("div", { class: "stg-heatmaps" }, p.maps.map((m) => mapView(m, p))),
    legend(p.scale),
  );
}

function mapView(m: Heatmap, p: HeatmapProps): HTMLElement {
  const groups: { group: string; span: number }[] = [];
  for (const c of m.columns) {
    const last = groups[groups.length - 1];
    if (last && last.group === c.group) last.span++;
    else groups.push({ group: c.group, span: 1 });
  }
  const hasGroups = groups.some((g) => g.group);
  const head = h(
    "thead",
    null,
    hasGroups
      ? h("tr", null, h("th", null), groups.map((g) => h("th", { colspan: String(g.span), class: "stg-heat-group", title: g.group || null }, g.group)))
      : null,
    h(
      "tr",
      null,
      h("th", null),
      m.columns.map((c) => h("th", { class: "stg-heat-col", title: c.module, "data-module": c.module }, h("span", null, elide(c.label, 18)))),
    ),
  );
  const body = h(
    "tbody",
    null,
    m.blocks.map((block, i) =>
      h(
        "tr",
        { "data-block": block },
        h("th", { class: "stg-heat-block", scope: "row", title: block }, shortName(block, p.prefixes.get(m.run) ?? "", 28)),
        m.cells[i].map((cell) => h("td", null, cell ? cellView(cell, p) : null)),
      ),
    ),
  );
  return h(
    "div",
    { class: "stg-heatmap", "data-run": m.run },
    h("div", { class: "stg-profile-runs" }, runLabel(m.run, runColour(m.run, p.runs))),
    h("div", { class: "stg-heat-wrap" }, h("table", { class: "stg-heat" }, head, body)),
  );
}

function cellView(cell: HeatCell, p: HeatmapProps): HTMLElement {
  const { row, level, dead } = cell;
  const selected = !!p.sel && p.sel[0] === row.run && p.sel[1] === row.tag;
  const lines = [row.tag, `${row.status} · ${fmt(row.score)} per ${row.axis}`];
  if (dead) lines.push(`${dead.units.length} of ${dead.count} units dead: ${unitRanges(dead.units)}`);
  const frozen = row.status === "frozen";
  return h("button", {
    type: "button",
    class: "stg-heat-cell",
    "data-tag": row.tag,
    "data-status": row.status,
    "data-dead": dead ? String(dead.units.length) : null,
    "aria-current": selected ? "true" : null,
    "aria-label": lines.join("; "),
    title: lines.join("\n"),
    style: frozen || level === null ? null : `background:${heatColour(level)}`,
    onclick: () => p.on.select(row, "charts"),
  });
}

function legend(scale: HeatScale): HTMLElement {
  const gradient = `linear-gradient(to right, ${HEAT_STOPS.join(", ")})`;
  return h(
    "div",
    { class: "stg-legend" },
    h(
      "span",
      null,
      fmt(scale.lo),
      h("span", { class: "stg-heat-ramp", style: `background:${gradient}` }),
      `${fmt(scale.hi)} per step`,
    ),
    h("span", null, h("span", { class: "stg-heat-cell stg-heat-key", "data-status": "frozen" }), "frozen (never changed)"),
    h("span", null, h("span", { class: "stg-heat-cell stg-heat-key", "data-status": "stagnant", style: `background:${heatColour(0)}` }), "stagnant"),
    h("span", null, h("span", { class: "stg-heat-cell stg-heat-key", "data-dead": "1", style: `background:${heatColour(0.5)}` }), "has dead units"),
    h("span", null, h("span", { class: "stg-heat-cell stg-heat-key" }), "no movement measured"),
  );
}
