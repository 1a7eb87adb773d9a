// uPlot charts: distribution bands, drift rate (log), sparklines, drift-versus-depth profile.
import uPlot from "uplot";
import type { LayerPoint, Series } from "./api";
import { fmt, fmtStep, forLog, positive, statusColour } from "./util";

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

function alpha(hex: string, a: number): string {
  const m = /^#([0-9a-f]{6})$/i.exec(hex);
  if (!m) return hex;
  const n = parseInt(m[1], 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

function axis(label: string | undefined, extra: Partial<uPlot.Axis> = {}): uPlot.Axis {
  const ink = cssVar("--axis");
  return {
    stroke: ink,
    label,
    labelSize: label ? 18 : 0,
    labelFont: "12px Roboto, Arial, sans-serif",
    font: "11px Roboto, Arial, sans-serif",
    grid: { stroke: cssVar("--grid"), width: 1 },
    ticks: { stroke: cssVar("--grid"), width: 1 },
    ...extra,
  };
}

/** Decade below the smallest positive value: where exact zeros are drawn on a log axis. */
function zeroDecade(values: Iterable<number | null>): number {
  let m = Infinity;
  for (const v of positive(values)) if (v < m) m = v;
  if (!Number.isFinite(m)) return 1e-9;
  return Math.pow(10, Math.floor(Math.log10(m)) - 1);
}

/** Log-axis tick labels, with the zero decade (if used) labelled "0". */
function logValues(zeroAt: number | null): uPlot.Axis.DynamicValues {
  return (_u, splits) =>
    splits.map((v) => {
      if (v === null || v === undefined || !(v > 0)) return null; // a tick uPlot filtered out
      if (zeroAt !== null && Math.abs(v - zeroAt) <= zeroAt * 1e-6) return "0";
      const e = Math.log10(v);
      return Math.abs(e - Math.round(e)) < 1e-6 ? fmt(v, 1) : fmt(v, 2);
    });
}

/** Tick positions at whole decades only (uPlot's default adds 2..9 x each decade). */
const decadeSplits: uPlot.Axis.Splits = (_u, _ai, min, max) => {
  const out: number[] = [];
  const lo = Math.ceil(Math.log10(min) - 1e-9);
  const hi = Math.floor(Math.log10(max) + 1e-9);
  for (let e = lo; e <= hi; e++) out.push(Math.pow(10, e));
  if (out.length < 2) return [min, max];
  return out;
};

/** A uPlot instance bound to a container that follows the container's width. */
export class ChartBox {
  private plot: uPlot | null = null;
  private ro: ResizeObserver;

  constructor(readonly el: HTMLElement, private height: number) {
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(el);
  }

  get instance(): uPlot | null {
    return this.plot;
  }

  private width(): number {
    return Math.max(160, Math.floor(this.el.clientWidth));
  }

  set(opts: Omit<uPlot.Options, "width" | "height">, data: uPlot.AlignedData): uPlot {
    this.destroy();
    this.plot = new uPlot({ ...opts, width: this.width(), height: this.height } as uPlot.Options, data, this.el);
    return this.plot;
  }

  resize(): void {
    if (!this.plot) return;
    const w = this.width();
    if (Math.abs(w - this.plot.width) >= 1) this.plot.setSize({ width: w, height: this.height });
  }

  destroy(): void {
    this.plot?.destroy();
    this.plot = null;
  }

  dispose(): void {
    this.destroy();
    this.ro.disconnect();
  }
}

const BAND_LABELS = ["min", "-2σ", "-1σ", "-0.5σ", "median", "+0.5σ", "+1σ", "+2σ", "max"];

/** TensorBoard-style distribution: nested percentile bands around the median, x = step. */
export function distributionOptions(
  s: Series,
  colour: string,
  readout: HTMLElement,
): { opts: Omit<uPlot.Options, "width" | "height">; data: uPlot.AlignedData } {
  const k = 9;
  const cols: (number | null)[][] = Array.from({ length: k }, () => []);
  s.steps.forEach((_, i) => {
    const row = s.percentiles.values[i];
    for (let j = 0; j < k; j++) {
      const v = row && row.length === k ? row[j] : null;
      cols[j].push(v !== null && v !== undefined && Number.isFinite(v) ? v : null);
    }
  });
  const series: uPlot.Series[] = [{ label: "step" }];
  for (let j = 0; j < k; j++) {
    const median = j === 4;
    series.push({
      label: BAND_LABELS[j],
      stroke: median ? colour : alpha(colour, 0.35),
      width: median ? 2 : j === 0 || j === 8 ? 0.5 : 0,
      points: { show: median && s.steps.length < 30, size: 4, fill: colour },
    });
  }
  const fill = alpha(colour, 0.16);
  const bands: uPlot.Band[] = [
    { series: [9, 1], fill },
    { series: [8, 2], fill },
    { series: [7, 3], fill },
    { series: [6, 4], fill },
  ];
  const showReadout = (u: uPlot) => {
    const i = u.cursor.idx;
    if (i === null || i === undefined || i < 0) {
      readout.textContent = "Bands: min–max, ±2σ, ±1σ, ±0.5σ around the median (hover for values).";
      return;
    }
    const v = (j: number) => fmt(cols[j][i] ?? null);
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
      axes: [axis("step"), axis(undefined, { size: 56 })],
      series,
      bands,
      hooks: { setCursor: [showReadout], ready: [showReadout] },
    },
    data: [s.steps, ...cols] as unknown as uPlot.AlignedData,
  };
}

/** Shade and label the stretch after `since` ("stagnant since step N"); label the zero line. */
function annotations(since: number | null, zeroAt: number | null): uPlot.Plugin {
  return {
    hooks: {
      draw: (u: uPlot) => {
        const ctx = u.ctx;
        const { left, top, width, height } = u.bbox;
        const dpr = window.devicePixelRatio || 1;
        ctx.save();
        ctx.beginPath();
        ctx.rect(left, top, width, height);
        ctx.clip();
        if (zeroAt !== null) {
          const y = Math.round(u.valToPos(zeroAt, "y", true));
          ctx.strokeStyle = cssVar("--faint");
          ctx.setLineDash([2 * dpr, 3 * dpr]);
          ctx.lineWidth = dpr;
          ctx.beginPath();
          ctx.moveTo(left, y);
          ctx.lineTo(left + width, y);
          ctx.stroke();
          ctx.setLineDash([]);
          ctx.fillStyle = cssVar("--muted");
          ctx.font = `${11 * dpr}px Roboto, Arial, sans-serif`;
          ctx.textBaseline = "bottom";
          ctx.textAlign = "left";
          ctx.fillText("no change (0)", left + 4 * dpr, y - 2 * dpr);
        }
        if (since !== null && Number.isFinite(since)) {
          const x = Math.round(u.valToPos(since, "x", true));
          const red = "#d32f2f";
          ctx.fillStyle = alpha(red, 0.08);
          ctx.fillRect(x, top, left + width - x, height);
          ctx.strokeStyle = red;
          ctx.lineWidth = 1.5 * dpr;
          ctx.setLineDash([5 * dpr, 4 * dpr]);
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          ctx.setLineDash([]);
          const text = `stagnant since step ${fmtStep(since)}`;
          ctx.font = `500 ${11 * dpr}px Roboto, Arial, sans-serif`;
          ctx.textBaseline = "top";
          const tw = ctx.measureText(text).width;
          const right = x + 6 * dpr + tw <= left + width;
          ctx.textAlign = right ? "left" : "right";
          ctx.fillStyle = red;
          ctx.fillText(text, right ? x + 6 * dpr : x - 6 * dpr, top + 4 * dpr);
        }
        ctx.restore();
      },
    },
  };
}

/** Drift rate per step on a log axis, with the stagnant threshold and the exact update ratio. */
export function rateOptions(
  s: Series,
  colour: string,
  threshold: number | null,
  floor: number | null,
): { opts: Omit<uPlot.Options, "width" | "height">; data: uPlot.AlignedData } {
  let xs: number[] = s.steps;
  let rate: (number | null)[] = s.rate.map((v) => (v !== null && Number.isFinite(v) ? v : null));
  let exact: (number | null)[] | null = null;
  if (s.exact && s.exact.steps.length) {
    const joined = uPlot.join([
      [s.steps, rate] as unknown as uPlot.AlignedData,
      [s.exact.steps, s.exact.update_ratio.map((v) => (v !== null && Number.isFinite(v) ? v : null))] as unknown as uPlot.AlignedData,
    ]);
    xs = joined[0] as number[];
    rate = (joined[1] as (number | null | undefined)[]).map((v) => (v === undefined ? null : v));
    exact = (joined[2] as (number | null | undefined)[]).map((v) => (v === undefined ? null : v));
  }
  const all = [...rate, ...(exact ?? [])];
  const hasZero = all.some((v) => v === 0);
  const thr = threshold !== null && Number.isFinite(threshold) && threshold > 0 ? threshold : null;
  const flo = floor !== null && Number.isFinite(floor) && floor > 0 ? floor : null;
  const zeroAt = hasZero ? zeroDecade([...all, thr, flo]) : null;
  const z = zeroAt ?? 1e-300;
  const rawRate = rate;
  const rawExact = exact;
  const series: uPlot.Series[] = [
    { label: "step", value: (_u, v) => fmtStep(v) },
    {
      label: "histogram drift rate",
      stroke: colour,
      width: 2,
      spanGaps: exact !== null,
      points: { show: xs.length < 60, size: 5, fill: colour },
      value: (_u, _v, _si, idx) => (idx === null ? "–" : fmt(rawRate[idx])),
    },
  ];
  const data: (number | null)[][] = [xs, forLog(rate, z)];
  if (exact) {
    series.push({
      label: "exact update ratio",
      stroke: cssVar("--accent"),
      width: 2,
      dash: [6, 3],
      spanGaps: true,
      points: { show: true, size: 4, fill: cssVar("--accent") },
      value: (_u, _v, _si, idx) => (idx === null ? "–" : fmt(rawExact![idx])),
    });
    data.push(forLog(exact, z));
  }
  if (thr !== null) {
    series.push({ label: "stagnant threshold", stroke: "#d32f2f", width: 1, dash: [4, 4], points: { show: false }, value: () => fmt(thr) });
    data.push(xs.map(() => thr));
  }
  if (flo !== null) {
    series.push({ label: "bucket floor", stroke: cssVar("--faint"), width: 1, dash: [1, 3], points: { show: false }, value: () => fmt(flo) });
    data.push(xs.map(() => flo));
  }
  const yScale: uPlot.Scale = { distr: 3, log: 10 };
  if (zeroAt !== null) {
    yScale.range = (_u, _min, max) => {
      const hi = Math.max(max, zeroAt * 10);
      return [zeroAt, Math.pow(10, Math.ceil(Math.log10(hi)))];
    };
  }
  return {
    opts: {
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: false }, y: yScale },
      axes: [axis("step"), axis("drift per step (log)", { size: 56, values: logValues(zeroAt), splits: decadeSplits })],
      series,
      plugins: [annotations(s.stagnant_since, zeroAt)],
    },
    data: data as unknown as uPlot.AlignedData,
  };
}

/** A tiny line of drift rates (oldest first), no axes, no cursor. */
export function sparkline(el: HTMLElement, values: (number | null)[], colour: string): uPlot {
  const ys = values.map((v) => (v !== null && Number.isFinite(v) ? v : null));
  const xs = ys.map((_, i) => i);
  let max = 0;
  for (const v of ys) if (v !== null && v > max) max = v;
  return new uPlot(
    {
      width: 120,
      height: 26,
      pxAlign: false,
      cursor: { show: false },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      legend: { show: false },
      scales: { x: { time: false }, y: { range: () => [0, max > 0 ? max * 1.08 : 1] } },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: colour, width: 1.5, fill: alpha(colour, 0.15), points: { show: false } }],
    },
    [xs, ys] as unknown as uPlot.AlignedData,
    el,
  );
}

export interface ProfileRun {
  run: string;
  colour: string;
  layers: LayerPoint[];
}

/** Drift versus depth: one line per run, x = layer index in model order, y = score (log). */
export function profileOptions(
  runs: ProfileRun[],
  selected: { run: string; tag: string } | null,
  onPick: (p: LayerPoint) => void,
): { opts: Omit<uPlot.Options, "width" | "height">; data: uPlot.AlignedData } {
  let n = 0;
  for (const r of runs) n = Math.max(n, r.layers.length);
  const xs = Array.from({ length: n }, (_, i) => i);
  // Name the x ticks by layer when every run has the same layer at each index.
  const short = (t: string) => (t.length > 18 ? t.slice(0, 8) + "…" + t.slice(-9) : t);
  let names: string[] | null = xs.map((i) => {
    const set = new Set(runs.map((r) => r.layers[i]?.layer).filter((x) => x !== undefined));
    return set.size === 1 ? short([...set][0] as string) : "";
  });
  if (names.some((x) => !x) || n > 60) names = null;
  const longest = names ? Math.max(...names.map((x) => x.length)) : 0;
  const allScores = runs.flatMap((r) => r.layers.map((l) => l.score));
  const hasZero = allScores.some((v) => v === 0);
  const zeroAt = hasZero ? zeroDecade(allScores) : null;
  const z = zeroAt ?? 1e-300;
  const series: uPlot.Series[] = [
    {
      label: "layer",
      value: (_u, v) => {
        if (v === null || v === undefined) return "–";
        const names = new Set(runs.map((r) => r.layers[v]?.layer).filter(Boolean));
        return names.size === 1 ? `${v}: ${[...names][0]}` : String(v);
      },
    },
  ];
  const data: (number | null)[][] = [xs];
  for (const r of runs) {
    series.push({
      label: r.run,
      stroke: r.colour,
      width: 1.5,
      points: { show: false },
      value: (_u, _v, _si, idx) => {
        const l = idx === null ? undefined : r.layers[idx];
        return l ? `${l.layer} · ${fmt(l.score)} · ${l.status}` : "–";
      },
    });
    data.push(forLog(xs.map((i) => r.layers[i]?.score ?? null), z));
  }
  const dots: uPlot.Plugin = {
    hooks: {
      draw: (u: uPlot) => {
        const ctx = u.ctx;
        const dpr = window.devicePixelRatio || 1;
        ctx.save();
        runs.forEach((r, ri) => {
          if (u.series[ri + 1]?.show === false) return;
          const ys = u.data[ri + 1] as (number | null)[];
          r.layers.forEach((l, i) => {
            const y = ys[i];
            if (y === null || y === undefined) return;
            const cx = u.valToPos(i, "x", true);
            const cy = u.valToPos(y, "y", true);
            const isSel = selected !== null && selected.run === r.run && selected.tag === l.tag;
            ctx.beginPath();
            ctx.arc(cx, cy, (isSel ? 6.5 : 4.5) * dpr, 0, 2 * Math.PI);
            ctx.fillStyle = statusColour(l.status);
            ctx.fill();
            ctx.lineWidth = (isSel ? 2.5 : 1.5) * dpr;
            ctx.strokeStyle = isSel ? cssVar("--ink") : r.colour;
            ctx.stroke();
          });
        });
        ctx.restore();
      },
      ready: (u: uPlot) => {
        u.over.addEventListener("click", () => {
          const i = u.cursor.idx;
          const top = u.cursor.top;
          if (i === null || i === undefined || top === undefined || top === null) return;
          let best: LayerPoint | null = null;
          let bestD = Infinity;
          runs.forEach((r, ri) => {
            if (u.series[ri + 1]?.show === false) return;
            const y = (u.data[ri + 1] as (number | null)[])[i];
            const l = r.layers[i];
            if (y === null || y === undefined || !l) return;
            const d = Math.abs(u.valToPos(y, "y") - top);
            if (d < bestD) {
              bestD = d;
              best = l;
            }
          });
          if (best) onPick(best);
        });
      },
    },
  };
  const yScale: uPlot.Scale = { distr: 3, log: 10 };
  if (zeroAt !== null) {
    yScale.range = (_u, _min, max) => [zeroAt, Math.pow(10, Math.ceil(Math.log10(Math.max(max, zeroAt * 10))))];
  }
  return {
    opts: {
      legend: { live: true },
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      scales: { x: { time: false, range: (_u, min, max) => [min - 0.5, max + 0.5] }, y: yScale },
      axes: [
        axis(names ? "layer (model order)" : "layer index (model order)", {
          incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
          space: names ? Math.min(90, 12 + 6 * longest) : 30,
          rotate: names && n > 6 ? -30 : 0,
          size: names && n > 6 ? Math.min(110, 24 + 5.2 * longest) : 40,
          values: (_u, splits) =>
            splits.map((v) => (!Number.isInteger(v) ? "" : names ? (names[v] ?? "") : String(v))),
        }),
        axis("movement score (log)", { size: 56, values: logValues(zeroAt), splits: decadeSplits }),
      ],
      series,
      plugins: [dots, annotations(null, zeroAt)],
    },
    data: data as unknown as uPlot.AlignedData,
  };
}
