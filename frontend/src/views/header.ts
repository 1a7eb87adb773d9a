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
      h("span", { class: "stg-sub" }, "Which layers are actually learning? Tags ranked by how much they move from step to step."),
      h("span", { class: "stg-updating", "aria-live": "polite" }, p.status),
    ),
    h(
      "p",
      { class: "stg-note" },
      h("b", null, "Histogram drift is a lower bound on movement: "),
      "updates of random sign and permutations of the weights barely change a histogram, so a static histogram is evidence, not proof, of a stuck layer. ",
      h("b", null, "exact"),
      " and ",
      h("b", null, "checkpoint"),
      " rows measure the update ratio ‖ΔW‖/‖W‖ itself.",
    ),
  );
}
