// The JSON contract of docs/http_api.md, normalised: non-finite numbers (sent as strings
// by TensorBoard's Respond) become JS numbers, missing fields become null.
import { num, numArray } from "./util";

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
  histogram_score: number | null;
  exact_score: number | null;
  sparkline: (number | null)[];
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

export interface Ranking {
  ratio: number | null;
  runs: string[];
  rows: Row[];
  layers: LayerPoint[];
  thresholds: Record<string, { histogram: number | null; exact: number | null }>;
}

export interface Series {
  run: string;
  tag: string;
  layer: string;
  role: string;
  status: string;
  score: number | null;
  threshold: number | null;
  source: string;
  stagnant_since: number | null;
  steps: number[];
  rate: (number | null)[];
  drift: (number | null)[];
  percentiles: { bps: number[]; values: ((number | null)[] | null)[] };
  exact: { steps: number[]; update_ratio: (number | null)[] } | null;
}

export class ApiError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

type Json = Record<string, unknown>;

const str = (v: unknown, dflt = ""): string => (typeof v === "string" ? v : v == null ? dflt : String(v));

async function getJson(url: string, signal?: AbortSignal): Promise<Json> {
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
    const msg =
      body && typeof body === "object" && typeof (body as Json).error === "string"
        ? ((body as Json).error as string)
        : text.trim().slice(0, 300) || resp.statusText;
    throw new ApiError(msg, resp.status);
  }
  if (!body || typeof body !== "object") {
    throw new ApiError("The server answered with something that is not JSON.", resp.status);
  }
  return body as Json;
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
    histogram_score: num(r.histogram_score),
    exact_score: num(r.exact_score),
    sparkline: numArray(r.sparkline),
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

export async function fetchRanking(ratio: number | null, signal?: AbortSignal): Promise<Ranking> {
  const q = new URLSearchParams();
  if (ratio !== null) q.set("ratio", String(ratio));
  const qs = q.toString();
  const j = await getJson(`./ranking${qs ? "?" + qs : ""}`, signal);
  const rows = Array.isArray(j.rows) ? (j.rows as Json[]).map(parseRow) : [];
  const layers = Array.isArray(j.layers) ? (j.layers as Json[]).map(parseLayer) : [];
  const runs = Array.isArray(j.runs) ? (j.runs as unknown[]).map((r) => str(r)) : [];
  for (const r of rows) if (!runs.includes(r.run)) runs.push(r.run);
  const thresholds: Ranking["thresholds"] = {};
  if (j.thresholds && typeof j.thresholds === "object") {
    for (const [k, v] of Object.entries(j.thresholds as Json)) {
      const t = (v ?? {}) as Json;
      thresholds[k] = { histogram: num(t.histogram), exact: num(t.exact) };
    }
  }
  return { ratio: num(j.ratio), runs: runs.sort(), rows, layers, thresholds };
}

export async function fetchSeries(run: string, tag: string, ratio: number | null, signal?: AbortSignal): Promise<Series> {
  const q = new URLSearchParams({ run, tag });
  if (ratio !== null) q.set("ratio", String(ratio));
  const j = await getJson(`./series?${q.toString()}`, signal);
  const p = (j.percentiles ?? {}) as Json;
  const values = Array.isArray(p.values)
    ? (p.values as unknown[]).map((v) => (Array.isArray(v) ? numArray(v) : null))
    : [];
  let exact: Series["exact"] = null;
  if (j.exact && typeof j.exact === "object") {
    const e = j.exact as Json;
    exact = {
      steps: numArray(e.steps).map((s) => s ?? 0),
      update_ratio: numArray(e.update_ratio),
    };
  }
  return {
    run: str(j.run, run),
    tag: str(j.tag, tag),
    layer: str(j.layer),
    role: str(j.role, "other"),
    status: str(j.status, "insufficient"),
    score: num(j.score),
    threshold: num(j.threshold),
    source: str(j.source, "histogram"),
    stagnant_since: num(j.stagnant_since),
    steps: numArray(j.steps).map((s) => s ?? 0),
    rate: numArray(j.rate),
    drift: numArray(j.drift),
    percentiles: { bps: numArray(p.bps).map((b) => b ?? 0), values },
    exact,
  };
}
