// The tab's title, what it answers, and how fresh the ranking is.
import { h } from "../dom";

export interface HeaderProps {
  /** "updating…", "update failed: …", or "". */
  status: string;
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
      h("span", { class: "stg-updating", "aria-live": "polite" }, p.status),
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
