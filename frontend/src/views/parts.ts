// Small pieces several views show the same way.
import { explain, type Definitions } from "../definitions";
import { h } from "../dom";
import { statusSwatch } from "../palette";

/** A run's colour swatch and name. */
export function runLabel(run: string, colour: string): HTMLElement {
  return h("span", { class: "stg-run" }, h("span", { class: "stg-swatch", style: `background:${colour}` }), h("span", null, run));
}

/** A status as a coloured badge, its meaning as the tooltip. */
export function statusBadge(status: string, defs: Definitions): HTMLElement {
  const { colour, ink } = statusSwatch(status);
  return h("span", { class: "stg-badge", style: `background:${colour};color:${ink}`, title: explain(defs.statuses, status) }, status);
}
