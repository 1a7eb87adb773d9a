// Drift versus depth: stuck early layers (the vanishing-gradient signature) stand out.
import type { LayerPoint, Ranking } from "../api";
import { mountChart } from "../charts/frame";
import { profileChart, profileScale, type ProfileLine } from "../charts/profile";
import { explain, type Term } from "../definitions";
import { h, type Scope } from "../dom";
import { runColour, statusSwatch } from "../palette";
import { shownRuns } from "../store";
import type { Theme } from "../theme";
import type { Selection } from "../viewstate";
import { runLabel } from "./parts";

/** One line per shown run that has layers, for the drift-versus-depth profile. */
export function profileLines(ranking: Ranking, hidden: readonly string[]): ProfileLine[] {
  return shownRuns(ranking.runs, hidden)
    .map((run) => ({ run, points: ranking.layers.filter((l) => l.run === run).sort((a, b) => a.order - b.order) }))
    .filter((line) => line.points.length);
}

/** Runs drawn on one chart of the profile: they share the layers on its x axis. */
export interface ProfileGroup {
  /** The layer names of every line of the group, in model order. */
  layers: string[];
  lines: ProfileLine[];
}

/**
 * The profile's charts: runs with the same layers in the same order share one chart (the
 * healthy and the broken variant of one model, side by side); a run of another architecture
 * gets its own, since a shared axis would draw its layers between layers they have nothing
 * to do with. In the order of each group's first run.
 */
export function profileGroups(lines: readonly ProfileLine[]): ProfileGroup[] {
  const groups = new Map<string, ProfileGroup>();
  for (const line of lines) {
    const layers = line.points.map((p) => p.layer);
    const key = JSON.stringify(layers);
    const group = groups.get(key);
    if (group) group.lines.push(line);
    else groups.set(key, { layers, lines: [line] });
  }
  return [...groups.values()];
}

export interface ProfileProps {
  lines: readonly ProfileLine[];
  runs: readonly string[];
  sel: Selection | null;
  statuses: readonly Term[];
  theme: Theme;
  on: { pickLayer(p: LayerPoint): void };
}

export function profileView(p: ProfileProps, scope: Scope): HTMLElement {
  const charts = h("div", { class: "stg-profiles" });
  const card = h(
    "section",
    { class: "stg-card", "aria-label": "Drift versus depth" },
    h("div", { class: "stg-chart-title" }, "Drift versus depth"),
    h(
      "p",
      { class: "stg-chart-cap" },
      "One point per layer (its main parameter), in model order; point colour = status. Runs with the same layers share a chart, one line each; every chart has the same y axis. Stagnant early layers stand out on the left. Click a point to select it.",
    ),
    charts,
    h(
      "div",
      { class: "stg-legend" },
      p.statuses.map(({ name }) =>
        h("span", { title: explain(p.statuses, name) }, h("span", { class: "stg-dot", style: `background:${statusSwatch(name).colour}` }), name),
      ),
    ),
  );
  if (!p.lines.length) {
    charts.append(h("div", { class: "stg-empty" }, "No run selected."));
    return card;
  }
  const scale = profileScale(p.lines.flatMap((l) => l.points.map((pt) => pt.score)));
  for (const group of profileGroups(p.lines)) {
    const lines = group.lines.map((l) => ({ ...l, colour: runColour(l.run, p.runs) }));
    const el = h("div", { class: "stg-profile" });
    charts.append(
      h(
        "div",
        { "data-runs": JSON.stringify(lines.map((l) => l.run)) },
        h("div", { class: "stg-profile-runs" }, lines.map((l) => runLabel(l.run, l.colour))),
        el,
      ),
    );
    mountChart(el, 240, profileChart(lines, group.layers, scale, p.sel, (pt) => p.on.pickLayer(pt), p.theme), scope);
  }
  return card;
}
