// Marks drawn over a chart: a labelled horizontal reference line, and the shaded stretch
// "stagnant since step N".
import type uPlot from "uplot";
import { fmtStep } from "../format";
import type { Theme } from "../theme";
import { alpha, STAGNANT_RED } from "./frame";

export interface Marks {
  /** A dotted line across the plot at y = value, its label at the left end. */
  line?: { value: number; label: string } | null;
  /** x from which the series is stagnant: shaded and labelled "stagnant since <unit> N". */
  since?: number | null;
  unit?: string;
}

export function marks(m: Marks, theme: Theme): uPlot.Plugin {
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
        if (m.line) {
          const y = Math.round(u.valToPos(m.line.value, "y", true));
          ctx.strokeStyle = theme.faint;
          ctx.setLineDash([2 * dpr, 3 * dpr]);
          ctx.lineWidth = dpr;
          ctx.beginPath();
          ctx.moveTo(left, y);
          ctx.lineTo(left + width, y);
          ctx.stroke();
          ctx.setLineDash([]);
          ctx.fillStyle = theme.muted;
          ctx.font = `${11 * dpr}px Roboto, Arial, sans-serif`;
          ctx.textBaseline = "bottom";
          ctx.textAlign = "left";
          ctx.fillText(m.line.label, left + 4 * dpr, y - 2 * dpr);
        }
        if (m.since !== null && m.since !== undefined && Number.isFinite(m.since)) {
          const x = Math.round(u.valToPos(m.since, "x", true));
          ctx.fillStyle = alpha(STAGNANT_RED, 0.08);
          ctx.fillRect(x, top, left + width - x, height);
          ctx.strokeStyle = STAGNANT_RED;
          ctx.lineWidth = 1.5 * dpr;
          ctx.setLineDash([5 * dpr, 4 * dpr]);
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          ctx.setLineDash([]);
          const text = `stagnant since ${m.unit ?? "step"} ${fmtStep(m.since)}`;
          ctx.font = `500 ${11 * dpr}px Roboto, Arial, sans-serif`;
          ctx.textBaseline = "top";
          const right = x + 6 * dpr + ctx.measureText(text).width <= left + width;
          ctx.textAlign = right ? "left" : "right";
          ctx.fillStyle = STAGNANT_RED;
          ctx.fillText(text, right ? x + 6 * dpr : x - 6 * dpr, top + 4 * dpr);
        }
        ctx.restore();
      },
    },
  };
}
