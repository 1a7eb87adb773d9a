// The tab's title, what it answers, and how fresh the ranking is.
import { h } from "../dom";
import { fmtStep } from "../format";

export interface HeaderProps {
  /** "updating…", "update failed: …", or "". */
  status: string;
  /** run -> the newest step the ranking's data reaches; null before the first ranking. */
  asOf: Readonly<Record<string, number>> | null;
  on: { refresh(): void };
}

/** "data to step 1,200", the newest step of any run; every run's on hover. */
function asOfLine(asOf: Readonly<Record<string, number>>): HTMLElement | null {
  const runs = Object.entries(asOf);
  if (!runs.length) return null;
  const newest = Math.max(...runs.map(([, step]) => step));
  const title = runs.map(([run, step]) => `${run}: step ${fmtStep(step)}`).join("\n");
  return h("span", { class: "stg-updating stg-as-of", title }, `data to step ${fmtStep(newest)}`);
}

export function headerView(p: HeaderProps): HTMLElement {
  return h(
    "header",
    { class: "stg-card" },
    h(
      "div",
      { class: "stg-head" },
      h("h1", null, "Stagnation"),
      h("span", { class: "stg-sub" }, "Which layers are actually learning?"),
      h("span", { class: "stg-updating", "aria-live": "polite", "data-status": p.status === "updating…" ? "updating" : null }, p.status),
      p.asOf && asOfLine(p.asOf),
      p.asOf &&
        h(
          "button",
          { type: "button", class: "stg-btn stg-reload", title: "Rank the newest data TensorBoard has loaded now (waits for it)", onclick: () => p.on.refresh() },
          "reload",
        ),
    ),
    h(
      "p",
      { class: "stg-note" },
      "Each row is one tensor of one run, ranked by how much it changes per training step. ",
      h("b", null, "stagnant"),
      ": changing far less than the run's typical parameter; ",
      h("b", null, "frozen"),
      ": never changed. Click a finding or a row to see its charts.",
    ),
  );
}
