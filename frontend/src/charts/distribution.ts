// The Distributions view's picture: nested percentile bands around the median, x = step.
import type uPlot from "uplot";
import type { Series } from "../api";
import { fmt, fmtStep } from "../format";
import type { Theme } from "../theme";
import { alpha, axis, finite, WHOLE_INCRS, type Chart } from "./frame";

const BAND_LABELS = ["min", "-2σ", "-1σ", "-0.5σ", "median", "+0.5σ", "+1σ", "+2σ", "max"];

/** True when the series holds at least one non-empty histogram to draw. */
export function hasDistribution(s: Series): boolean {
  return s.percentiles.values.some((v) => v !== null && v.length === BAND_LABELS.length);
}

/** The chart; `readout` shows the values under the cursor (or what the bands are). */
export function distributionChart(s: Series, colour: string, readout: HTMLElement, theme: Theme): Chart {
  const k = BAND_LABELS.length;
  const cols = Array.from({ length: k }, (_, j) =>
    finite(s.steps.map((_, i) => {
      const row = s.percentiles.values[i];
      return row && row.length === k ? row[j] : null;
    })),
  );
  const series: uPlot.Series[] = [{ label: "step" }];
  cols.forEach((_, j) => {
    const median = j === 4;
    series.push({
      label: BAND_LABELS[j],
      stroke: median ? colour : alpha(colour, 0.35),
      width: median ? 2 : j === 0 || j === k - 1 ? 0.5 : 0,
      points: { show: median && s.steps.length < 30, size: 4, fill: colour },
    });
  });
  const fill = alpha(colour, 0.16);
  // Series indexes are 1-based: band [9, 1] fills between max and min, and so on inwards.
  const bands: uPlot.Band[] = [0, 1, 2, 3].map((j) => ({ series: [k - j, j + 1] as [number, number], fill }));
  const show = (u: uPlot) => {
    const i = u.cursor.idx;
    if (i === null || i === undefined || i < 0) {
      readout.textContent = "Bands: min–max, ±2σ, ±1σ, ±0.5σ around the median (hover for values).";
      return;
    }
    const v = (j: number) => fmt(cols[j][i]);
    readout.textContent =
      cols[4][i] === null
        ? `step ${fmtStep(s.steps[i])}: empty histogram`
        : `step ${fmtStep(s.steps[i])}: median ${v(4)} · ±1σ [${v(2)}, ${v(6)}] · ±2σ [${v(1)}, ${v(7)}] · min/max [${v(0)}, ${v(8)}]`;
  };
  return {
    opts: {
      legend: { show: false },
      cursor: { points: { show: false }, drag: { x: true, y: false } },
      scales: { x: { time: false } },
      axes: [axis(theme, "step", { incrs: WHOLE_INCRS }), axis(theme, undefined, { size: 56 })],
      series,
      bands,
      hooks: { setCursor: [show], ready: [show] },
    },
    data: [s.steps, ...cols] as unknown as uPlot.AlignedData,
  };
}
