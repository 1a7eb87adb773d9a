// The JSON contract of docs/http_api.md, normalised: missing fields become null or
// defaults, so the views never meet an undefined. Every number the server sends is finite
// or null by construction (its JSON has no NaN), so a number field is a number or null.
import { FALLBACK, type Definitions, type Term } from "./definitions";

export interface Row {
  run: string;
  tag: string;
  layer: string;
  role: string;
  order: number;
  status: string;
  score: number | null;
  net: number | null;
  samples: number | null;
  first_step: number | null;
  last_step: number | null;
  floor: number | null;
  threshold: number | null;
  source: string;
  /** What the steps of exact or checkpoint data count: "step", "epoch" or "checkpoint" (save order). */
  axis: string;
  /** From which step (on `axis`) the row's own measurement stays below its threshold. */
  stagnant_since: number | null;
  histogram_score: number | null;
  exact_score: number | null;
  sparkline: (number | null)[];
  /** The repeated block the tensor belongs to ("model.layers.3"), and its name inside it ("self_attn.q_proj.weight"); null outside blocks. */
  block: string | null;
  module: string | null;
  /** 1-based position in the server's ranking (most-moving first). */
  rank: number;
}

export interface LayerPoint {
  run: string;
  layer: string;
  order: number;
  tag: string;
  role: string;
  score: number | null;
  status: string;
  source: string;
}

export interface Finding {
  run: string;
  kind: string;
  tags: string[];
  layers: string[];
  since_step: number | null;
  /** One plain sentence. */
  message: string;
  /** dead_units: the dead units' indices (ascending), and how many units the tensor has; else [] and 0. */
  units: number[];
  unit_count: number;
}

/** Records of a series, or of a run's thinned series, that TensorBoard kept, of those written. */
export interface Thinned {
  kept: number;
  written: number;
  /** How many series were thinned (in a run's total). */
  series?: number;
}

export interface Ranking {
  ratio: number | null;
  runs: string[];
  rows: Row[];
  layers: LayerPoint[];
  /** null when the server sends none (not the same as "no findings"). */
  findings: Finding[] | null;
  /** run -> what TensorBoard kept of its exact-movement records, for runs where it dropped some. */
  thinned: Record<string, Thinned>;
  definitions: Definitions;
  freshness: Freshness;
}

/** How new an answer's data is: run -> the newest step it reaches, and whether a newer answer is being made. */
export interface Freshness {
  as_of: Record<string, number>;
  refreshing: boolean;
}

/** Per-unit movement of a tensor (rows, output channels): what the unit view draws. */
export interface Units {
  /** What a unit is: "output channel", "row", "unit". */
  noun: string;
  axis: number | null;
  count: number;
  /** Dead units' indices, ascending. */
  dead: number[];
  /** Movement below which a unit is dead. */
  threshold: number | null;
  /** Units in ascending order of movement (at most 512 of them), with their movement. */
  sorted: { units: number[]; movement: (number | null)[] };
  /** Per checkpoint pair (ending at steps[i]): min, p10, median, p90, max of the units' movement. */
  pairs: { steps: number[]; quantiles: (number | null)[][] };
}

/** Movement measured between saved checkpoints; index i is the pair ending at steps[i]. */
export interface CheckpointSeries {
  steps: number[];
  update_ratio: (number | null)[];
  cosine: (number | null)[];
  axis: string;
  thinned: Thinned | null;
}

export interface Series {
  run: string;
  tag: string;
  status: string;
  threshold: number | null;
  /** The run's stagnant threshold per source (histogram, exact, checkpoint). */
  thresholds: Record<string, number | null>;
  source: string;
  stagnant_since: number | null;
  steps: number[];
  rate: (number | null)[];
  percentiles: { bps: number[]; values: ((number | null)[] | null)[] };
  exact: { steps: number[]; update_ratio: (number | null)[]; thinned: Thinned | null } | null;
  checkpoint: CheckpointSeries | null;
  /** Per-unit movement, where the server measured it. */
  units: Units | null;
  /** The share of exact zeros per step (aligned with `steps`), null where the buckets cannot tell; its dying_relu line is `thresholds.zero_share`. */
  zero_share: (number | null)[] | null;
  freshness: Freshness;
}

export class ApiError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

/** " (HTTP 404)" for an error the server answered with, else "". */
export function httpStatus(e: unknown): string {
  return e instanceof ApiError && e.status ? ` (HTTP ${e.status})` : "";
}

type Json = Record<string, unknown>;

/** `fresh`: the user asked to reload, so wait for an answer from the newest data (`fresh=1`). */
export async function fetchRanking(signal: AbortSignal, ratio: number | null, fresh = false): Promise<Ranking> {
  const q = new URLSearchParams();
  if (ratio !== null) q.set("ratio", String(ratio));
  if (fresh) q.set("fresh", "1");
  const qs = q.toString();
  return parseRanking(await getJson(`./ranking${qs ? "?" + qs : ""}`, signal));
}

export async function fetchSeries(signal: AbortSignal, run: string, tag: string, ratio: number | null): Promise<Series> {
  const q = new URLSearchParams({ run, tag });
  if (ratio !== null) q.set("ratio", String(ratio));
  return parseSeries(await getJson(`./series?${q.toString()}`, signal), run, tag);
}

async function getJson(url: string, signal: AbortSignal): Promise<Json> {
  let resp: Response;
  try {
    resp = await fetch(url, { signal, headers: { Accept: "application/json" } });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(`The TensorBoard server did not answer (${(e as Error).message}).`, 0);
  }
  const text = await resp.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (!resp.ok) {
    const error = isObject(body) && typeof body.error === "string" ? body.error : "";
    throw new ApiError(error || text.trim().slice(0, 300) || resp.statusText, resp.status);
  }
  if (!isObject(body)) throw new ApiError("The server answered with something that is not JSON.", resp.status);
  return body;
}

export function parseRanking(j: Json): Ranking {
  const rows = list(j.rows).map(parseRow);
  const runs = strings(j.runs);
  for (const r of rows) if (!runs.includes(r.run)) runs.push(r.run);
  return {
    ratio: num(j.ratio),
    runs: runs.sort(),
    rows,
    layers: list(j.layers).map(parseLayer),
    findings: Array.isArray(j.findings) ? list(j.findings).map(parseFinding) : null,
    thinned: parseThinnedRuns(j.thinned),
    definitions: parseDefinitions(j.definitions),
    freshness: parseFreshness(j),
  };
}

function parseFreshness(j: Json): Freshness {
  const as_of: Record<string, number> = {};
  if (isObject(j.as_of)) {
    for (const [run, step] of Object.entries(j.as_of)) if (typeof step === "number") as_of[run] = step;
  }
  return { as_of, refreshing: j.refreshing === true };
}

function parseUnits(v: unknown): Units | null {
  if (!isObject(v)) return null;
  const sorted = isObject(v.sorted) ? v.sorted : {};
  const pairs = isObject(v.pairs) ? v.pairs : {};
  return {
    noun: str(v.noun, "unit"),
    axis: num(v.axis),
    count: num(v.count) ?? 0,
    dead: steps(v.dead),
    threshold: num(v.threshold),
    sorted: { units: steps(sorted.units), movement: numArray(sorted.movement) },
    pairs: { steps: steps(pairs.steps), quantiles: Array.isArray(pairs.quantiles) ? pairs.quantiles.map(numArray) : [] },
  };
}

function parseThinned(v: unknown): Thinned | null {
  if (!isObject(v)) return null;
  const kept = num(v.kept);
  const written = num(v.written);
  if (kept === null || written === null) return null;
  const series = num(v.series);
  return series === null ? { kept, written } : { kept, written, series };
}

function parseThinnedRuns(v: unknown): Record<string, Thinned> {
  const out: Record<string, Thinned> = {};
  if (isObject(v)) {
    for (const [run, t] of Object.entries(v)) {
      const parsed = parseThinned(t);
      if (parsed) out[run] = parsed;
    }
  }
  return out;
}

function parseRow(r: Json, i: number): Row {
  return {
    run: str(r.run),
    tag: str(r.tag),
    layer: str(r.layer),
    role: str(r.role, "other"),
    order: num(r.order) ?? 0,
    status: str(r.status, "insufficient"),
    score: num(r.score),
    net: num(r.net),
    samples: num(r.samples),
    first_step: num(r.first_step),
    last_step: num(r.last_step),
    floor: num(r.floor),
    threshold: num(r.threshold),
    source: str(r.source, "histogram"),
    axis: str(r.axis, "step"),
    stagnant_since: num(r.stagnant_since),
    histogram_score: num(r.histogram_score),
    exact_score: num(r.exact_score),
    sparkline: numArray(r.sparkline),
    block: typeof r.block === "string" ? r.block : null,
    module: typeof r.module === "string" ? r.module : null,
    rank: i + 1,
  };
}

function parseLayer(r: Json): LayerPoint {
  return {
    run: str(r.run),
    layer: str(r.layer),
    order: num(r.order) ?? 0,
    tag: str(r.tag),
    role: str(r.role, "other"),
    score: num(r.score),
    status: str(r.status, "insufficient"),
    source: str(r.source, "histogram"),
  };
}

function parseFinding(f: Json): Finding {
  return {
    run: str(f.run),
    kind: str(f.kind),
    tags: strings(f.tags),
    layers: strings(f.layers),
    since_step: num(f.since_step),
    message: str(f.message),
    units: steps(f.units),
    unit_count: num(f.unit_count) ?? 0,
  };
}

function parseDefinitions(v: unknown): Definitions {
  const d = isObject(v) ? v : {};
  const terms = (x: unknown, dflt: Term[]): Term[] =>
    Array.isArray(x) ? list(x).map((t) => ({ name: str(t.name), meaning: str(t.meaning) })) : dflt;
  return {
    statuses: terms(d.statuses, FALLBACK.statuses),
    roles: terms(d.roles, FALLBACK.roles),
    sources: terms(d.sources, FALLBACK.sources),
    finding_kinds: terms(d.finding_kinds, FALLBACK.finding_kinds),
    parameter_roles: Array.isArray(d.parameter_roles) ? strings(d.parameter_roles) : FALLBACK.parameter_roles,
    default_ratio: num(d.default_ratio) ?? FALLBACK.default_ratio,
    thinned: typeof d.thinned === "string" ? d.thinned : FALLBACK.thinned,
    keep_all_flag: typeof d.keep_all_flag === "string" && d.keep_all_flag ? d.keep_all_flag : FALLBACK.keep_all_flag,
  };
}

export function parseSeries(j: Json, run: string, tag: string): Series {
  const p = isObject(j.percentiles) ? j.percentiles : {};
  const thresholds: Record<string, number | null> = {};
  if (isObject(j.thresholds)) for (const [k, v] of Object.entries(j.thresholds)) thresholds[k] = num(v);
  const e = isObject(j.exact) ? j.exact : null;
  const c = isObject(j.checkpoint) ? j.checkpoint : null;
  return {
    run: str(j.run, run),
    tag: str(j.tag, tag),
    status: str(j.status, "insufficient"),
    threshold: num(j.threshold),
    thresholds,
    source: str(j.source, "histogram"),
    stagnant_since: num(j.stagnant_since),
    steps: steps(j.steps),
    rate: numArray(j.rate),
    percentiles: {
      bps: steps(p.bps),
      values: Array.isArray(p.values) ? p.values.map((v) => (Array.isArray(v) ? numArray(v) : null)) : [],
    },
    exact: e && { steps: steps(e.steps), update_ratio: numArray(e.update_ratio), thinned: parseThinned(e.thinned) },
    checkpoint: c && {
      steps: steps(c.steps),
      update_ratio: numArray(c.update_ratio),
      cosine: numArray(c.cosine),
      axis: str(c.axis, str(j.axis, "step")),
      thinned: parseThinned(c.thinned),
    },
    units: parseUnits(j.units),
    zero_share: Array.isArray(j.zero_share) ? numArray(j.zero_share) : null,
    freshness: parseFreshness(j),
  };
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The objects of a JSON list (anything else in it dropped). */
function list(v: unknown): Json[] {
  return Array.isArray(v) ? v.filter(isObject) : [];
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.map((x) => str(x)) : [];
}

function str(v: unknown, dflt = ""): string {
  return typeof v === "string" ? v : v == null ? dflt : String(v);
}

/** A JSON number, or null (null, or anything else where a number belongs). */
function num(v: unknown): number | null {
  return typeof v === "number" ? v : null;
}

function numArray(v: unknown): (number | null)[] {
  return Array.isArray(v) ? v.map(num) : [];
}

function steps(v: unknown): number[] {
  return numArray(v).map((s) => s ?? 0);
}
