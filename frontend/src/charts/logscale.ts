// Log y axes for ratios: exact zeros (a frozen tensor) get their own line a decade below
// the smallest positive value, labelled "0"; ticks at whole decades only.
import type uPlot from "uplot";
import { fmt } from "../format";
import type { Theme } from "../theme";
import { axis, WHOLE_INCRS, type Chart } from "./frame";
import { marks, type Marks } from "./marks";

/** Where zeros are drawn: the decade below the smallest positive value, or null when no value is 0. */
export function zeroLevel(values: readonly (number | null)[]): number | null {
  if (!values.some((v) => v === 0)) return null;
  let m = Infinity;
  for (const v of values) if (v !== null && Number.isFinite(v) && v > 0 && v < m) m = v;
  return Number.isFinite(m) ? Math.pow(10, Math.floor(Math.log10(m)) - 1) : 1e-9;
}

/** Values for a log axis: zeros at `zeroAt`, negative and non-finite values as gaps. */
export function forLog(vs: readonly (number | null)[], zeroAt: number | null): (number | null)[] {
  return vs.map((v) => (v === null || !Number.isFinite(v) || v < 0 ? null : v === 0 ? zeroAt : v));
}

/** The y scale: log 10, reaching down to the zero line when there is one. */
export function logScale(zeroAt: number | null): uPlot.Scale {
  const scale: uPlot.Scale = { distr: 3, log: 10 };
  if (zeroAt !== null) {
    scale.range = (_u, _min, max) => [zeroAt, Math.pow(10, Math.ceil(Math.log10(Math.max(max, zeroAt * 10))))];
  }
  return scale;
}

/** Tick labels, the zero line's labelled "0". */
export function logValues(zeroAt: number | null): uPlot.Axis.DynamicValues {
  return (_u, splits) =>
    splits.map((v) => {
      if (v === null || v === undefined || !(v > 0)) return null; // a tick uPlot filtered out
      if (zeroAt !== null && Math.abs(v - zeroAt) <= zeroAt * 1e-6) return "0";
      const e = Math.log10(v);
      return Math.abs(e - Math.round(e)) < 1e-6 ? fmt(v, 1) : fmt(v, 2);
    });
}

/** A log y axis labelled `label`: ticks at whole decades, zeros at `zeroAt` labelled "0". */
export function logAxis(theme: Theme, label: string, zeroAt: number | null): uPlot.Axis {
  return axis(theme, label, { size: 56, values: logValues(zeroAt), splits: decadeSplits });
}

/** Ticks at whole decades (uPlot's default adds 2..9 x each decade). */
export const decadeSplits: uPlot.Axis.Splits = (_u, _ai, min, max) => {
  const out: number[] = [];
  const lo = Math.ceil(Math.log10(min) - 1e-9);
  const hi = Math.floor(Math.log10(max) + 1e-9);
  for (let e = lo; e <= hi; e++) out.push(Math.pow(10, e));
  return out.length < 2 ? [min, max] : out;
};

/**
 * Options of a chart of movement against whole-numbered x (steps, units in order) on a log y axis,
 * with the "no change (0)" line where zeros are drawn: one frame for the ratio and unit charts, so
 * they read alike. `extra` adds what one chart has beyond it (bands, the "stagnant since" shading).
 */
export function logChartOpts(
  theme: Theme,
  labels: { x: string; y: string },
  zeroAt: number | null,
  series: uPlot.Series[],
  extra: { bands?: uPlot.Band[]; marks?: Omit<Marks, "line"> } = {},
): Chart["opts"] {
  return {
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
    scales: { x: { time: false }, y: logScale(zeroAt) },
    axes: [axis(theme, labels.x, { incrs: WHOLE_INCRS }), logAxis(theme, labels.y, zeroAt)],
    series,
    ...(extra.bands ? { bands: extra.bands } : {}),
    plugins: [marks({ line: zeroAt === null ? null : { value: zeroAt, label: "no change (0)" }, ...extra.marks }, theme)],
  };
}
