// Colours: runs in TensorBoard's own palette, statuses and finding kinds by severity.

const RUN_PALETTE = [
  "#12b5cb", "#e52592", "#f9ab00", "#9334e6", "#7cb342", "#e8710a",
  "#425066", "#0077bb", "#cc3311", "#009988", "#ee7733", "#33bbee",
];

/** Stable colour per run: its index in the sorted list of runs (a hash for a stray name). */
export function runColour(run: string, sortedRuns: readonly string[]): string {
  let i = sortedRuns.indexOf(run);
  if (i < 0) {
    let hsh = 0;
    for (let k = 0; k < run.length; k++) hsh = (hsh * 31 + run.charCodeAt(k)) | 0;
    i = Math.abs(hsh);
  }
  return RUN_PALETTE[i % RUN_PALETTE.length];
}

export interface Swatch {
  colour: string;
  /** Text colour that reads on `colour`. */
  ink: string;
}

const STATUS_SWATCHES: Record<string, Swatch> = {
  frozen: { colour: "#1e88e5", ink: "#fff" },
  stagnant: { colour: "#d32f2f", ink: "#fff" },
  unresolved: { colour: "#f9a825", ink: "#222" },
  nonfinite: { colour: "#8e24aa", ink: "#fff" },
  insufficient: { colour: "#8d8d8d", ink: "#fff" },
  moving: { colour: "#2e7d32", ink: "#fff" },
};

export function statusSwatch(status: string): Swatch {
  return STATUS_SWATCHES[status] ?? STATUS_SWATCHES.insufficient;
}

/** The heatmap's colour ramp, least to most movement (viridis: ordered in lightness, readable on light and dark). */
export const HEAT_STOPS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];

/** The ramp's colour at `t` (0..1, clamped), interpolated between its stops. */
export function heatColour(t: number): string {
  const x = Math.min(1, Math.max(0, t)) * (HEAT_STOPS.length - 1);
  const i = Math.min(HEAT_STOPS.length - 2, Math.floor(x));
  const [a, b] = [HEAT_STOPS[i], HEAT_STOPS[i + 1]].map((c) => [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16)));
  const mix = a.map((v, k) => Math.round(v + (b[k] - v) * (x - i)));
  return `#${mix.map((v) => v.toString(16).padStart(2, "0")).join("")}`;
}
