// Small helpers shared by the tab: DOM building (text only, never HTML), number
// formatting, colours.

type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;
type Child = Node | string | number | null | undefined | false;

/** Create an element. Strings become text nodes: user data is never parsed as HTML. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs | null = null,
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") {
        el.addEventListener(k.slice(2), v as EventListener);
      } else if (k === "class") {
        el.className = String(v);
      } else if (k === "text") {
        el.textContent = String(v);
      } else if (v === true) {
        el.setAttribute(k, "");
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: (Child | Child[])[]): void {
  for (const c of children) {
    if (Array.isArray(c)) append(el, c);
    else if (c === null || c === undefined || c === false) continue;
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el: Node): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

/** JSON numbers as TensorBoard's Respond sends them: non-finite values arrive as strings. */
export function num(v: unknown): number | null {
  if (typeof v === "number") return v;
  if (typeof v === "string") {
    if (v === "NaN") return NaN;
    if (v === "Infinity") return Infinity;
    if (v === "-Infinity") return -Infinity;
    const n = Number(v);
    return v.trim() !== "" && !Number.isNaN(n) ? n : null;
  }
  return null;
}

export function numArray(v: unknown): (number | null)[] {
  return Array.isArray(v) ? v.map(num) : [];
}

/** Compact, readable numbers: 0.0123, 1.2e-4, 12.3, 4.5e+6. */
export function fmt(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined) return "–";
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "∞";
  if (v === -Infinity) return "-∞";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e5) {
    const s = v.toPrecision(digits);
    return s.includes("e") ? s : String(Number(s));
  }
  const [m, e] = v.toExponential(digits - 1).split("e");
  return `${String(Number(m))}e${Number(e)}`;
}

export function fmtStep(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  return Math.round(v).toLocaleString("en-US");
}

/** Escape a string so it matches itself literally in a regular expression. */
export function escapeRegExp(s: string): string {
  // Only the syntax characters: valid with and without the `u` flag.
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// TensorBoard's own run palette, so runs look familiar.
const RUN_PALETTE = [
  "#12b5cb", "#e52592", "#f9ab00", "#9334e6", "#7cb342", "#e8710a",
  "#425066", "#0077bb", "#cc3311", "#009988", "#ee7733", "#33bbee",
];

/** Stable colour per run: its index in the sorted list of runs. */
export function runColour(run: string, sortedRuns: readonly string[]): string {
  let i = sortedRuns.indexOf(run);
  if (i < 0) {
    // Unknown run (should not happen): hash the name.
    let hsh = 0;
    for (let k = 0; k < run.length; k++) hsh = (hsh * 31 + run.charCodeAt(k)) | 0;
    i = Math.abs(hsh);
  }
  return RUN_PALETTE[i % RUN_PALETTE.length];
}

export const STATUSES = ["frozen", "stagnant", "unresolved", "nonfinite", "insufficient", "moving"] as const;

export const STATUS_INFO: Record<string, { colour: string; ink: string; help: string }> = {
  frozen: {
    colour: "#1e88e5", ink: "#fff",
    help: "frozen: the histogram is identical at every kept step; the tensor most likely does not change at all",
  },
  stagnant: {
    colour: "#d32f2f", ink: "#fff",
    help: "stagnant: drift stays below the run's stagnant threshold (ratio × the run's typical score)",
  },
  unresolved: {
    colour: "#f9a825", ink: "#222",
    help: "unresolved: movement is below what the histogram buckets can resolve; neither proven moving nor stuck",
  },
  nonfinite: {
    colour: "#8e24aa", ink: "#fff",
    help: "nonfinite: the histogram contains NaN or Inf values",
  },
  insufficient: {
    colour: "#8d8d8d", ink: "#fff",
    help: "insufficient: fewer than two usable samples, so no drift can be measured",
  },
  moving: {
    colour: "#2e7d32", ink: "#fff",
    help: "moving: the distribution changes from step to step",
  },
};

export function statusColour(status: string): string {
  return (STATUS_INFO[status] ?? STATUS_INFO.insufficient).colour;
}

export const ROLES = [
  "weight", "bias", "norm_scale", "norm_offset", "moving_stat", "gradient", "activation", "other",
] as const;
export const PARAM_ROLES = new Set(["weight", "bias", "norm_scale", "norm_offset"]);

/** Positive finite values only (what a log axis can show). */
export function positive(vs: Iterable<number | null>): number[] {
  const out: number[] = [];
  for (const v of vs) if (v !== null && Number.isFinite(v) && v > 0) out.push(v);
  return out;
}

/**
 * Map values for a log axis: zeros are drawn at `zeroAt` (one decade below the smallest
 * positive value in `reference`), non-finite and negative values become gaps.
 */
export function zeroLevel(reference: Iterable<number | null>): number {
  const pos = positive(reference);
  if (!pos.length) return 1e-9;
  let m = Infinity;
  for (const v of pos) if (v < m) m = v;
  return m / 10;
}

export function forLog(vs: readonly (number | null)[], zeroAt: number): (number | null)[] {
  return vs.map((v) => (v === null || !Number.isFinite(v) || v < 0 ? null : v === 0 ? zeroAt : v));
}
