// Findings first: what the ranking found, run by run, one plain sentence each. A click
// selects the finding's layer in the table.
import type { Finding, Ranking, Row } from "../api";
import { explain, type Term } from "../definitions";
import { h } from "../dom";
import { runColour, statusSwatch } from "../palette";
import { withoutPrefix } from "../names";
import { findRow, shownRuns } from "../store";
import type { Selection } from "../viewstate";
import { runLabel } from "./parts";

export interface FindingItem {
  finding: Finding;
  /** The row a click selects, or null when the ranking holds none of its tags or layers. */
  target: Row | null;
}

export interface RunFindings {
  run: string;
  items: FindingItem[];
}

/** Findings of the shown runs, grouped by run in run order; null when the server sent none. */
export function findingsByRun(ranking: Ranking, hidden: readonly string[]): RunFindings[] | null {
  const findings = ranking.findings;
  if (!findings) return null;
  return shownRuns(ranking.runs, hidden).map((run) => ({
    run,
    items: findings.filter((f) => f.run === run).map((finding) => ({ finding, target: findingTarget(ranking, finding) })),
  }));
}

/** A finding's row: its first tag that is a row of its run, else its first layer's main tag. */
function findingTarget(ranking: Ranking, f: Finding): Row | null {
  for (const tag of f.tags) {
    const row = findRow(ranking, [f.run, tag]);
    if (row) return row;
  }
  for (const layer of f.layers) {
    const main = ranking.layers.find((l) => l.run === f.run && l.layer === layer);
    const row = main ? findRow(ranking, [f.run, main.tag]) : null;
    if (row) return row;
  }
  return null;
}

export interface FindingsProps {
  groups: readonly RunFindings[];
  runs: readonly string[];
  kinds: readonly Term[];
  sel: Selection | null;
  /** run -> the prefix every layer of it shares, left out of the sentences shown (the full one on hover). */
  prefixes: ReadonlyMap<string, string>;
  on: { pickFinding(row: Row): void };
}

export function findingsView(p: FindingsProps): HTMLElement {
  const count = p.groups.reduce((n, g) => n + g.items.length, 0);
  return h(
    "section",
    { class: "stg-card stg-findings", "aria-label": "Findings" },
    h(
      "div",
      { class: "stg-findings-head" },
      h("h2", null, "Findings"),
      h("span", { class: "stg-count" }, count ? `${count} in ${p.groups.filter((g) => g.items.length).length} of ${p.groups.length} runs; click one to select its layer` : "none"),
    ),
    h(
      "div",
      { class: "stg-findings-list" },
      p.groups.flatMap((g) => [
        h("div", { class: "stg-findings-run", "data-run": g.run }, runLabel(g.run, runColour(g.run, p.runs))),
        g.items.length
          ? h("ul", { "data-run": g.run }, g.items.map((item) => h("li", null, findingView(item, p))))
          : h("div", { class: "stg-healthy", "data-run": g.run }, "healthy: no findings"),
      ]),
    ),
  );
}

function findingView({ finding, target }: FindingItem, p: FindingsProps): HTMLElement {
  const shown = withoutPrefix(finding.message, p.prefixes.get(finding.run) ?? "");
  const content = [
    h("span", { class: "stg-dot", style: `background:${findingColour(finding.kind)}` }),
    h("span", null, shown),
  ];
  const kind = explain(p.kinds, finding.kind);
  const title = shown === finding.message ? kind : `${finding.message}\n\n${kind}`;
  const attrs = { class: "stg-finding", "data-kind": finding.kind, title };
  if (!target) return h("span", attrs, content);
  const selected = !!p.sel && p.sel[0] === target.run && p.sel[1] === target.tag;
  return h(
    "button",
    { ...attrs, type: "button", "aria-current": selected ? "true" : null, onclick: () => p.on.pickFinding(target) },
    content,
  );
}

// A finding kind takes the colour of the status it resembles.
const KIND_STATUS: Record<string, string> = {
  norm_stats_frozen: "frozen",
  dying_relu: "stagnant",
  bias_before_norm: "unresolved",
  init_scale: "unresolved",
  frozen: "frozen",
  dead_units: "frozen",
  inactive_adapter: "frozen",
  stagnant: "stagnant",
  stalled: "stagnant",
  vanishing_gradient: "stagnant",
  nonfinite: "nonfinite",
  histogram_blind: "unresolved",
};

function findingColour(kind: string): string {
  return statusSwatch(KIND_STATUS[kind] ?? "insufficient").colour;
}
