// The table's tiny line of drift rates (oldest first): no axes, no cursor.
import uPlot from "uplot";
import type { Scope } from "../dom";
import { alpha, finite } from "./frame";

export function mountSparkline(el: HTMLElement, values: (number | null)[], colour: string, scope: Scope): void {
  const ys = finite(values);
  const max = Math.max(0, ...ys.map((v) => v ?? 0));
  const plot = new uPlot(
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
    [ys.map((_, i) => i), ys] as unknown as uPlot.AlignedData,
    el,
  );
  scope.add(() => plot.destroy());
}
