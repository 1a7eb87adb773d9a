// Drift versus depth: stuck early layers (the vanishing-gradient signature) stand out.
import type { LayerPoint } from "../api";
import { mountChart } from "../charts/frame";
import { profileChart } from "../charts/profile";
import { explain, type Term } from "../definitions";
import { h, type Scope } from "../dom";
import { runColour, statusSwatch } from "../palette";
import { layerAxis, type ProfileLine } from "../store";
import type { Theme } from "../theme";
import type { Selection } from "../viewstate";

export interface ProfileProps {
  lines: readonly ProfileLine[];
  runs: readonly string[];
  sel: Selection | null;
  statuses: readonly Term[];
  theme: Theme;
  on: { pickLayer(p: LayerPoint): void };
}

export function profileView(p: ProfileProps, scope: Scope): HTMLElement {
  const el = h("div", { class: "stg-profile" });
  const card = h(
    "section",
    { class: "stg-card", "aria-label": "Drift versus depth" },
    h("div", { class: "stg-chart-title" }, "Drift versus depth"),
    h(
      "p",
      { class: "stg-chart-cap" },
      "One point per layer (its main parameter), in model order, one line per run; point colour = status. Stagnant early layers stand out on the left. Click a point to select it.",
    ),
    el,
    h(
      "div",
      { class: "stg-legend" },
      p.statuses.map(({ name }) =>
        h("span", { title: explain(p.statuses, name) }, h("span", { class: "stg-dot", style: `background:${statusSwatch(name).colour}` }), name),
      ),
    ),
  );
  if (!p.lines.length) {
    el.append(h("div", { class: "stg-empty" }, "No run selected."));
    return card;
  }
  const lines = p.lines.map((l) => ({ ...l, colour: runColour(l.run, p.runs) }));
  mountChart(el, 260, profileChart(lines, layerAxis(p.lines), p.sel, (pt) => p.on.pickLayer(pt), p.theme), scope);
  return card;
}
