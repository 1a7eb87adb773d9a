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
