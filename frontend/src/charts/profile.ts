// Drift versus depth: each layer's score in model order, one line per run of a group of runs
// with the same layers (views/profile: profileGroups). The x axis names those layers; dots take the
// status colour; every chart of the profile shares one y range (profileScale).
import type uPlot from "uplot";
import type { LayerPoint } from "../api";
import { elide, fmt } from "../format";
import { statusSwatch } from "../palette";
import type { Theme } from "../theme";
import type { Selection } from "../viewstate";
import { axis, type Chart } from "./frame";
import { forLog, logAxis, zeroLevel } from "./logscale";
import { marks } from "./marks";

/** One run's line of the chart. */
export interface ProfileLine {
  run: string;
  /** The run's layers in model order. */
  points: LayerPoint[];
}

const CHAR_PX = 6.3; // average width of an 11px Roboto character
const Y_AXIS_PX = 70;

/** The y axis of every chart of the profile, so that heights compare across charts. */
export interface ProfileScale {
  /** Where zero scores are drawn, or null when there are none. */
  zeroAt: number | null;
  range: [number, number];
}

/** Whole decades around every positive score, reaching down to the zero line if any. */
export function profileScale(scores: readonly (number | null)[]): ProfileScale {
  const zeroAt = zeroLevel(scores);
  const positive = scores.filter((v): v is number => v !== null && Number.isFinite(v) && v > 0);
  const lo = zeroAt ?? (positive.length ? Math.min(...positive) : 1e-6);
  const hi = positive.length ? Math.max(...positive) : lo * 10;
  const bottom = Math.pow(10, Math.floor(Math.log10(lo)));
  return { zeroAt, range: [bottom, Math.max(Math.pow(10, Math.ceil(Math.log10(hi))), bottom * 10)] };
}

export function profileChart(
  lines: readonly (ProfileLine & { colour: string })[],
  names: readonly string[],
  scale: ProfileScale,
  selected: Selection | null,
  onPick: (p: LayerPoint) => void,
  theme: Theme,
): Chart {
  const at = new Map(names.map((n, i) => [n, i]));
  const xs = names.map((_, i) => i);
  // Each line's point at each x (or none): what the dots, the legend and a click look up.
  const grid = lines.map((l) => {
    const row: (LayerPoint | null)[] = xs.map(() => null);
    for (const p of l.points) row[at.get(p.layer)!] = p;
    return row;
  });
  const { zeroAt } = scale;
  const labels = names.map((n) => elide(n, 16));
  const labelPx = CHAR_PX * Math.max(1, ...labels.map((l) => l.length));
  // Rotate the labels when they do not fit side by side; uPlot then skips some if need be.
  const crowded = (u: uPlot) => (u.width - Y_AXIS_PX) / Math.max(1, names.length) < labelPx + 10;
  const series: uPlot.Series[] = [{ label: "layer", value: (_u, v) => (v === null || v === undefined ? "–" : names[v] ?? "–") }];
  const data: (number | null)[][] = [xs];
  lines.forEach((l, li) => {
    series.push({
      label: l.run,
      stroke: l.colour,
      width: 1.5,
      spanGaps: true, // a run's line runs past the layers only other runs have
      points: { show: false },
      value: (_u, _v, _si, idx) => {
        const p = idx === null ? null : grid[li][idx];
        return p ? `${fmt(p.score)} · ${p.status}` : "–";
      },
    });
    data.push(forLog(grid[li].map((p) => p?.score ?? null), zeroAt));
  });
  const dots: uPlot.Plugin = {
    hooks: {
      draw: (u: uPlot) => {
        const ctx = u.ctx;
        const dpr = window.devicePixelRatio || 1;
        ctx.save();
        grid.forEach((row, li) => {
          if (u.series[li + 1]?.show === false) return;
          const ys = u.data[li + 1] as (number | null)[];
          row.forEach((p, i) => {
            const y = ys[i];
            if (!p || y === null || y === undefined) return;
            const isSel = selected !== null && selected[0] === p.run && selected[1] === p.tag;
            ctx.beginPath();
            ctx.arc(u.valToPos(i, "x", true), u.valToPos(y, "y", true), (isSel ? 6.5 : 4.5) * dpr, 0, 2 * Math.PI);
            ctx.fillStyle = statusSwatch(p.status).colour;
            ctx.fill();
            ctx.lineWidth = (isSel ? 2.5 : 1.5) * dpr;
            ctx.strokeStyle = isSel ? theme.ink : lines[li].colour;
            ctx.stroke();
          });
        });
        ctx.restore();
      },
      ready: (u: uPlot) => {
        // A click picks the point nearest the cursor at the layer under it.
        u.over.addEventListener("click", () => {
          const i = u.cursor.idx;
          const top = u.cursor.top;
          if (i === null || i === undefined || top === null || top === undefined) return;
          let best: LayerPoint | null = null;
          let bestD = Infinity;
          grid.forEach((row, li) => {
            const y = (u.data[li + 1] as (number | null)[])[i];
            const p = row[i];
            if (u.series[li + 1]?.show === false || !p || y === null || y === undefined) return;
            const d = Math.abs(u.valToPos(y, "y") - top);
            if (d < bestD) [best, bestD] = [p, d];
          });
          if (best) onPick(best);
        });
      },
    },
  };
  return {
    opts: {
      legend: { live: true },
      cursor: { drag: { x: false, y: false }, points: { show: false } },
      scales: { x: { time: false, range: (_u, min, max) => [min - 0.5, max + 0.5] }, y: { distr: 3, log: 10, range: () => scale.range } },
      axes: [
        axis(theme, "layer (model order)", {
          incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
          space: (u) => (crowded(u) ? 15 : labelPx + 10),
          rotate: (u) => (crowded(u) ? -45 : 0),
          size: (u) => (crowded(u) ? 18 + 0.71 * labelPx : 30),
          values: (_u, splits) => splits.map((v) => (Number.isInteger(v) ? labels[v] ?? "" : "")),
        }),
        logAxis(theme, "movement score (log)", zeroAt),
      ],
      series,
      plugins: [dots, marks({ line: zeroAt === null ? null : { value: zeroAt, label: "no change (0)" } }, theme)],
    },
    data: data as unknown as uPlot.AlignedData,
  };
}
