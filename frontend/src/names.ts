// Long tensor names made readable. A PEFT model's tags all start with
// "base_model.model.", a Keras model's often with "functional/": the part every layer of a run
// shares says nothing about which layer it is, so the table, the findings and the heatmap show
// names without it, elided in the middle where they are still too long. The full name stays
// on hover (title) and in the detail view. Pure: the unit tests run these in node.
import { elide } from "./format";

/** How many characters of a name the table shows, its layer part and the rest together. */
export const NAME_MAX = 60;

/**
 * The prefix every one of `layers` shares, cut at a separator ("." or "/") before the end of
 * the shortest, so every layer keeps a name of its own; "" with fewer than two distinct layers
 * (a one-layer run's name is all there is) or nothing shared.
 */
export function commonPrefix(layers: Iterable<string>): string {
  const distinct = [...new Set(layers)];
  if (distinct.length < 2) return "";
  let shared = distinct[0];
  for (const name of distinct) {
    let i = 0;
    while (i < shared.length && i < name.length && shared[i] === name[i]) i++;
    shared = shared.slice(0, i);
  }
  const shortest = Math.min(...distinct.map((n) => n.length));
  for (let i = Math.min(shared.length, shortest - 1) - 1; i >= 0; i--) {
    if (shared[i] === "." || shared[i] === "/") return shared.slice(0, i + 1);
  }
  return "";
}

/**
 * Each run's common layer prefix (commonPrefix of its rows' layers), only for runs that have
 * one. It stops short of a repeated block's container: a run of adapters only shows
 * "layers.0.self_attn.q_proj", never a bare "0.self_attn.q_proj".
 */
export function prefixesByRun(rows: Iterable<{ run: string; layer: string; block: string | null }>): Map<string, string> {
  const layers = new Map<string, string[]>();
  for (const r of rows) {
    const names = r.block ? [r.layer, r.block.slice(0, Math.max(r.block.lastIndexOf("."), r.block.lastIndexOf("/")))] : [r.layer];
    const list = layers.get(r.run);
    if (list) list.push(...names);
    else layers.set(r.run, names);
  }
  const out = new Map<string, string>();
  for (const [run, names] of layers) {
    const prefix = commonPrefix(names);
    if (prefix) out.set(run, prefix);
  }
  return out;
}

/** `name` without `prefix` (when it starts with it), elided in the middle to `max` characters. */
export function shortName(name: string, prefix: string, max = NAME_MAX): string {
  const rest = prefix && name.startsWith(prefix) && name.length > prefix.length ? name.slice(prefix.length) : name;
  return elide(rest, max);
}

/**
 * A finding's sentence with `prefix` dropped wherever it starts a name (at the start, or after
 * a character that cannot be part of a name: a space, a parenthesis, a quote).
 */
export function withoutPrefix(text: string, prefix: string): string {
  if (!prefix) return text;
  const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return text.replace(new RegExp(`(^|[^\\w./-])${escaped}(?=[\\w])`, "g"), "$1");
}

/**
 * Sorted unit indices as ranges: [0, 1, 2, 3, 200, ..., 255] -> "0-3, 200-255". At most
 * `maxRanges` ranges are written, then "and N more" (N units).
 */
export function unitRanges(units: readonly number[], maxRanges = 12): string {
  const ranges: [number, number][] = [];
  for (const u of units) {
    const last = ranges[ranges.length - 1];
    if (last && u === last[1] + 1) last[1] = u;
    else if (!last || u > last[1]) ranges.push([u, u]);
  }
  const text = ranges.slice(0, maxRanges).map(([a, b]) => (a === b ? String(a) : `${a}-${b}`));
  const rest = ranges.slice(maxRanges).reduce((n, [a, b]) => n + b - a + 1, 0);
  return text.join(", ") + (rest ? `, and ${rest} more` : "");
}
