// The cosine between consecutive updates, from -1 to 1: whether a parameter keeps moving
// one way (near 1), walks at random (near 0) or swings back and forth (negative).
import type uPlot from "uplot";
import { fmt, fmtStep } from "../format";
import type { Theme } from "../theme";
import { axis, finite, WHOLE_INCRS, type Chart } from "./frame";
import { marks } from "./marks";

export function cosineChart(xs: number[], cosine: (number | null)[], xName: string, xLabel: string, colour: string, theme: Theme): Chart {
  const ys = finite(cosine);
  return {
    opts: {
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: false }, y: { range: [-1.1, 1.1] } }, // room for points at ±1
      axes: [axis(theme, xLabel, { incrs: WHOLE_INCRS }), axis(theme, "cosine", { size: 56, splits: () => [-1, -0.5, 0, 0.5, 1] })],
      series: [
        { label: xName, value: (_u, v) => fmtStep(v) },
        {
          label: "cosine between consecutive updates",
          stroke: colour,
          width: 2,
          points: { show: true, size: 5, fill: colour },
          value: (_u, v) => fmt(v),
        },
      ],
      plugins: [marks({ line: { value: 0, label: "no consistent direction (0)" } }, theme)],
    },
    data: [xs, ys] as unknown as uPlot.AlignedData,
  };
}
