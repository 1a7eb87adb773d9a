// Ratios per step on a log axis: histogram drift rate, exact update ratio, the update ratio
// between checkpoints. Lines on their own x values, joined on one axis; each line's stagnant
// threshold (the run's, for that line's source) and the bucket floor as flat lines.
import uPlot from "uplot";
import { fmt, fmtStep } from "../format";
import type { Theme } from "../theme";
import { finite, flatLine, STAGNANT_RED, type Chart } from "./frame";
import { forLog, logChartOpts, zeroLevel } from "./logscale";

export interface RatioLine {
  label: string;
  xs: number[];
  ys: (number | null)[];
  colour: string;
  dashed?: boolean;
}

/** The run's stagnant threshold for one source: a flat line, its value in the legend. */
export interface Threshold {
  source: string;
  value: number | null;
  dashed?: boolean;
}

export interface RatioSpec {
  /** What x counts ("step"), for the legend; xLabel names the axis at length. */
  xName: string;
  xLabel: string;
  yLabel: string;
  lines: RatioLine[];
  thresholds: Threshold[];
  /** The smallest change histogram buckets record, per step. */
  floor?: number | null;
  /** x from which the ratio stays below the threshold. */
  since?: number | null;
}

export function ratioChart(spec: RatioSpec, theme: Theme): Chart {
  const lines = spec.lines.filter((l) => l.xs.length);
  const joined =
    lines.length === 1
      ? ([lines[0].xs, finite(lines[0].ys)] as uPlot.AlignedData)
      : uPlot.join(lines.map((l) => [l.xs, finite(l.ys)] as uPlot.AlignedData));
  const xs = joined[0] as number[];
  const raw = joined.slice(1).map((col) => Array.from(col as ArrayLike<number | null | undefined>, (v) => v ?? null));
  const positiveOrNull = (v: number | null | undefined) => (v !== null && v !== undefined && Number.isFinite(v) && v > 0 ? v : null);
  const thresholds = spec.thresholds.flatMap((t) => {
    const value = positiveOrNull(t.value);
    return value === null ? [] : [{ ...t, value }];
  });
  const floor = positiveOrNull(spec.floor);
  const zeroAt = zeroLevel([...raw.flat(), ...thresholds.map((t) => t.value), floor].filter((v) => v !== null));
  const series: uPlot.Series[] = [{ label: spec.xName, value: (_u, v) => fmtStep(v) }];
  const data: (number | null)[][] = [xs];
  lines.forEach((l, i) => {
    series.push({
      label: l.label,
      stroke: l.colour,
      width: 2,
      dash: l.dashed ? [6, 3] : undefined,
      spanGaps: lines.length > 1, // joined lines have gaps at each other's x values
      points: { show: l.xs.length < 60, size: l.dashed ? 4 : 5, fill: l.colour },
      value: (_u, _v, _si, idx) => (idx === null ? "–" : fmt(raw[i][idx])),
    });
    data.push(forLog(raw[i], zeroAt));
  });
  const flat = thresholds.map((t) => flatLine(`stagnant threshold (${t.source})`, t.value, fmt(t.value), STAGNANT_RED, t.dashed ? [10, 4] : [4, 4], xs));
  if (floor !== null) flat.push(flatLine("bucket floor", floor, fmt(floor), theme.faint, [1, 3], xs));
  for (const [s, column] of flat) {
    series.push(s);
    data.push(column);
  }
  return {
    opts: logChartOpts(theme, { x: spec.xLabel, y: spec.yLabel }, zeroAt, series, { marks: { since: spec.since, unit: spec.xName } }),
    data: data as unknown as uPlot.AlignedData,
  };
}
