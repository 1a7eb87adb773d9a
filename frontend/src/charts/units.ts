// Inside one tensor: its units (output channels, rows, units) sorted by how far they moved, the
// dead ones marked below the dead line; each checkpoint pair's spread of unit movement as a
// band; and, for an activation, the share of exact zeros per step (the dying-ReLU signature).
import type uPlot from "uplot";
import type { Units } from "../api";
import { fmt, fmtStep } from "../format";
import type { Theme } from "../theme";
import { alpha, axis, finite, flatLine, STAGNANT_RED, WHOLE_INCRS, type Chart } from "./frame";
import { forLog, logChartOpts, zeroLevel } from "./logscale";

/** Units in ascending order of movement, x = place in that order; dead units in red; the dead line. */
export function unitsSortedChart(u: Units, noun: string, colour: string, theme: Theme): Chart {
  const movement = finite(u.sorted.movement);
  const dead = new Set(u.dead);
  const xs = movement.map((_, i) => i);
  const threshold = u.threshold !== null && u.threshold > 0 ? u.threshold : null;
  const zeroAt = zeroLevel([...movement, threshold]);
  const live = forLog(movement.map((v, i) => (dead.has(u.sorted.units[i]) ? null : v)), zeroAt);
  const deadYs = forLog(movement.map((v, i) => (dead.has(u.sorted.units[i]) ? v : null)), zeroAt);
  const unitAt = (idx: number | null | undefined) => (idx === null || idx === undefined ? "–" : String(u.sorted.units[idx] ?? "–"));
  const series: uPlot.Series[] = [
    { label: noun, value: (_p, _v, _si, idx) => unitAt(idx) },
    { label: "movement", stroke: colour, width: 1.5, points: { show: movement.length < 80, size: 4, fill: colour }, value: (_p, _v, _si, idx) => (idx === null ? "–" : fmt(movement[idx])) },
    { label: `dead ${noun}s`, stroke: STAGNANT_RED, width: 0, paths: () => null, points: { show: true, size: 6, fill: STAGNANT_RED, stroke: STAGNANT_RED }, value: (_p, v) => (v === null ? "–" : "dead") },
  ];
  const data: (number | null)[][] = [xs, live, deadYs];
  if (threshold !== null) {
    const [s, column] = flatLine("dead below", threshold, fmt(threshold), STAGNANT_RED, [4, 4], xs);
    series.push(s);
    data.push(column);
  }
  const shown = u.count > movement.length ? ` (${movement.length} of ${u.count} shown)` : "";
  return {
    opts: logChartOpts(theme, { x: `${noun}s, least moving first${shown}`, y: "movement (log)" }, zeroAt, series),
    data: data as unknown as uPlot.AlignedData,
  };
}

const QUANTILES = ["min", "p10", "median", "p90", "max"];

/** Per checkpoint pair: the units' movement, median line in min-max and p10-p90 bands (log). */
export function unitPairsChart(u: Units, xName: string, xLabel: string, colour: string, theme: Theme): Chart {
  const cols = QUANTILES.map((_, j) => finite(u.pairs.quantiles.map((q) => q[j] ?? null)));
  const zeroAt = zeroLevel(cols.flat());
  const series: uPlot.Series[] = [{ label: xName, value: (_p, v) => fmtStep(v) }];
  cols.forEach((col, j) => {
    const median = j === 2;
    series.push({
      label: QUANTILES[j],
      stroke: median ? colour : alpha(colour, 0.45),
      width: median ? 2 : 0.5,
      points: { show: median && u.pairs.steps.length < 40, size: 4, fill: colour },
      value: (_p, _v, _si, idx) => (idx === null ? "–" : fmt(col[idx])),
    });
  });
  const bands: uPlot.Band[] = [
    { series: [5, 1], fill: alpha(colour, 0.12) },
    { series: [4, 2], fill: alpha(colour, 0.22) },
  ];
  return {
    opts: logChartOpts(theme, { x: xLabel, y: "unit movement (log)" }, zeroAt, series, { bands }),
    data: [u.pairs.steps, ...cols.map((c) => forLog(c, zeroAt))] as unknown as uPlot.AlignedData,
  };
}

/** An activation's share of exact zeros per step (0..1, drawn in percent), and the dying-ReLU line where known. */
export function zeroShareChart(steps: number[], share: (number | null)[], threshold: number | null, colour: string, theme: Theme): Chart {
  const percent = finite(share).map((v) => (v === null ? null : 100 * v));
  const series: uPlot.Series[] = [
    { label: "step", value: (_p, v) => fmtStep(v) },
    { label: "exact zeros", stroke: colour, width: 2, points: { show: steps.length < 60, size: 5, fill: colour }, value: (_p, v) => (v === null ? "–" : `${fmt(v, 3)}%`) },
  ];
  const data: (number | null)[][] = [steps, percent];
  if (threshold !== null) {
    const [s, column] = flatLine("dying_relu threshold", 100 * threshold, `${fmt(100 * threshold, 3)}%`, STAGNANT_RED, [4, 4], steps);
    series.push(s);
    data.push(column);
  }
  return {
    opts: {
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: false }, y: { range: [0, 100] } },
      axes: [axis(theme, "step", { incrs: WHOLE_INCRS }), axis(theme, "exact zeros (%)", { size: 48 })],
      series,
    },
    data: data as unknown as uPlot.AlignedData,
  };
}
