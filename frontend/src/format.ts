// Numbers as the tab prints them.

/** Compact, readable numbers: 0.0123, 1.2e-4, 12.3, 4.5e+6; "–" for nothing measured. */
export function fmt(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined) return "–";
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

/** What an x value counts, by a row's or series' `axis`. */
export function axisName(axis: string): string {
  if (axis === "epoch") return "epoch";
  if (axis === "checkpoint") return "checkpoint";
  return "step";
}

/** The x-axis label of exact or checkpoint data; checkpoint order says the step is unknown. */
export function axisLabel(axis: string): string {
  return axis === "checkpoint" ? "checkpoint (save order; the real step is unknown)" : axisName(axis);
}

/** `text` shortened to `max` characters in the middle, where layer names differ least. */
export function elide(text: string, max: number): string {
  if (text.length <= max) return text;
  const head = Math.ceil((max - 1) / 2);
  return text.slice(0, head) + "…" + text.slice(text.length - (max - 1 - head));
}
