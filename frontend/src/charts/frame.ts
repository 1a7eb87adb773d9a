// What every chart shares: the box a uPlot lives in, themed axes, colour helpers.
import uPlot from "uplot";
import type { Scope } from "../dom";
import type { Theme } from "../theme";

/** A chart before it has a size: uPlot options without width and height, and its data. */
export interface Chart {
  opts: Omit<uPlot.Options, "width" | "height">;
  data: uPlot.AlignedData;
}

/**
 * Mount `chart` in `el` at `height`, following the element's width (it may be built
 * detached: the first resize after it is attached sizes it). Released with `scope`.
 */
export function mountChart(el: HTMLElement, height: number, chart: Chart, scope: Scope): uPlot {
  const width = () => Math.max(160, Math.floor(el.clientWidth));
  const plot = new uPlot({ ...chart.opts, width: width(), height } as uPlot.Options, chart.data, el);
  const resize = new ResizeObserver(() => {
    if (Math.abs(width() - plot.width) >= 1) plot.setSize({ width: width(), height });
  });
  resize.observe(el);
  scope.add(() => {
    resize.disconnect();
    plot.destroy();
  });
  return plot;
}

export function axis(theme: Theme, label: string | undefined, extra: Partial<uPlot.Axis> = {}): uPlot.Axis {
  return {
    stroke: theme.axis,
    label,
    labelSize: label ? 18 : 0,
    labelFont: "12px Roboto, Arial, sans-serif",
    font: "11px Roboto, Arial, sans-serif",
    grid: { stroke: theme.grid, width: 1 },
    ticks: { stroke: theme.grid, width: 1 },
    ...extra,
  };
}

/** `#rrggbb` at opacity `a`. */
export function alpha(hex: string, a: number): string {
  const m = /^#([0-9a-f]{6})$/i.exec(hex);
  if (!m) return hex;
  const n = parseInt(m[1], 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

/** Finite values as they are, anything else as a gap. */
export function finite(vs: readonly (number | null)[]): (number | null)[] {
  return vs.map((v) => (v !== null && Number.isFinite(v) ? v : null));
}

export const STAGNANT_RED = "#d32f2f";

/**
 * A flat reference line at `value` across every x (a threshold, a floor): its legend entry,
 * which always shows `shown`, and its data column.
 */
export function flatLine(label: string, value: number, shown: string, stroke: string, dash: number[], xs: readonly number[]): [uPlot.Series, number[]] {
  return [{ label, stroke, width: 1, dash, points: { show: false }, value: () => shown }, xs.map(() => value)];
}

/** Tick increments for an x axis of steps, epochs or checkpoints: whole numbers only. */
export const WHOLE_INCRS = [1, 2, 5].flatMap((m) => Array.from({ length: 10 }, (_, e) => m * 10 ** e)).sort((a, b) => a - b);
