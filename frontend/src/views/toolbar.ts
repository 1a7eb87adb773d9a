// The filters: runs, stagnant threshold ratio, tag regex, role, status.
import type { Ranking } from "../api";
import { explain, meaning, type Term } from "../definitions";
import { h } from "../dom";
import { runColour, statusSwatch } from "../palette";
import { filterRows, type Filters } from "../store";
import { ALL_ROLES, PARAMETERS } from "../viewstate";

export interface ToolbarHandlers {
  setHidden(hidden: string[]): void;
  setRatio(ratio: number | null): void;
  typeTag(tag: string): void;
  setRole(role: string): void;
  setStatus(status: string[]): void;
}

export interface ToolbarProps {
  runs: readonly string[];
  hidden: readonly string[];
  ratio: number;
  tag: string;
  tagError: string | null;
  roles: readonly RoleOption[];
  role: string;
  statuses: readonly Term[];
  status: readonly string[];
  /** Rows per status under the other filters. */
  counts: ReadonlyMap<string, number>;
  on: ToolbarHandlers;
}

export interface RoleOption {
  value: string;
  label: string;
  title: string;
}

/** The role filter's choices with row counts (of the shown runs): parameters, all, each role present. */
export function roleOptions(ranking: Ranking, hidden: readonly string[], current: string): RoleOption[] {
  const defs = ranking.definitions;
  const rows = ranking.rows.filter((r) => !hidden.includes(r.run));
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.role, (counts.get(r.role) ?? 0) + 1);
  const params = rows.filter((r) => defs.parameter_roles.includes(r.role)).length;
  const known = defs.roles.map((t) => t.name);
  const roles = [...known, ...[...counts.keys()].filter((r) => !known.includes(r))];
  return [
    { value: PARAMETERS, label: `parameters (${params})`, title: `roles ${defs.parameter_roles.join(", ")}` },
    { value: ALL_ROLES, label: `all (${rows.length})`, title: "every role, gradients and activations too" },
    ...roles
      .filter((r) => counts.has(r) || r === current)
      .map((r) => ({ value: r, label: `${r} (${counts.get(r) ?? 0})`, title: meaning(defs.roles, r) })),
  ];
}

/** Rows per status under every filter but the status filter: the status chips' counts. */
export function statusCounts(ranking: Ranking, f: Filters): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of filterRows(ranking, f, true)) counts.set(r.status, (counts.get(r.status) ?? 0) + 1);
  return counts;
}

export function toolbarView(p: ToolbarProps): HTMLElement {
  return h(
    "section",
    { class: "stg-card", id: "stg-toolbar", "aria-label": "Filters" },
    h(
      "div",
      { class: "stg-toolbar" },
      h("div", { class: "stg-field" }, "Runs", runChips(p)),
      h(
        "label",
        { class: "stg-field", title: "A tag is stagnant when its movement stays below this fraction of its run's typical parameter score" },
        "Stagnant below",
        ratioInput(p),
        "× the run's typical score",
      ),
    ),
    h(
      "div",
      { class: "stg-toolbar" },
      h("label", { class: "stg-field" }, "Tag", tagInput(p), h("span", { class: "stg-invalid", role: "alert" }, p.tagError ?? "")),
      h("label", { class: "stg-field" }, "Role", roleSelect(p)),
      h("div", { class: "stg-field" }, "Status", statusChips(p)),
    ),
  );
}

function runChips(p: ToolbarProps): HTMLElement {
  const chips = p.runs.map((run) => {
    const on = !p.hidden.includes(run);
    return h(
      "button",
      {
        class: "stg-chip",
        type: "button",
        "aria-pressed": String(on),
        title: run,
        "data-focus-key": JSON.stringify(["run", run]),
        onclick: () => p.on.setHidden(on ? [...p.hidden, run] : p.hidden.filter((x) => x !== run)),
      },
      h("span", { class: "stg-swatch", style: `background:${runColour(run, p.runs)}` }),
      h("span", { class: "stg-label" }, run),
    );
  });
  return h(
    "div",
    { class: "stg-chips", role: "group", "aria-label": "Runs" },
    chips,
    p.hidden.length ? h("button", { class: "stg-btn", type: "button", "data-focus-key": "all-runs", onclick: () => p.on.setHidden([]) }, "show all") : null,
  );
}

function ratioInput(p: ToolbarProps): HTMLInputElement {
  const input = h("input", {
    type: "number", min: "0.0001", max: "1", step: "0.005", value: String(p.ratio),
    "aria-label": "Stagnant threshold ratio", "data-focus-key": "ratio",
  });
  input.addEventListener("change", () => {
    const v = Number(input.value);
    p.on.setRatio(input.value && Number.isFinite(v) && v > 0 && v <= 1 ? v : null);
  });
  return input;
}

function tagInput(p: ToolbarProps): HTMLInputElement {
  const input = h("input", {
    type: "text", placeholder: "regex, e.g. conv|dense", "aria-label": "Filter tags by regular expression",
    spellcheck: "false", value: p.tag, "data-focus-key": "tag",
    class: p.tagError ? "stg-bad" : null, "aria-invalid": String(p.tagError !== null),
  });
  // While an input method composes a character the value is not final yet.
  input.addEventListener("input", (ev) => {
    if (!(ev as InputEvent).isComposing) p.on.typeTag(input.value);
  });
  input.addEventListener("compositionend", () => p.on.typeTag(input.value));
  return input;
}

function roleSelect(p: ToolbarProps): HTMLSelectElement {
  const select = h(
    "select",
    { "aria-label": "Filter by role", "data-focus-key": "role" },
    p.roles.map((o) => h("option", { value: o.value, title: o.title, selected: o.value === p.role }, o.label)),
  );
  select.addEventListener("change", () => p.on.setRole(select.value));
  return select;
}

function statusChips(p: ToolbarProps): HTMLElement {
  return h(
    "div",
    { class: "stg-chips", role: "group", "aria-label": "Filter by status" },
    p.statuses.map(({ name }) => {
      const on = p.status.includes(name);
      return h(
        "button",
        {
          class: "stg-chip",
          type: "button",
          "aria-pressed": String(!p.status.length || on),
          title: explain(p.statuses, name) + (on ? " (click to show all statuses)" : " (click to show only this status)"),
          "data-focus-key": JSON.stringify(["status", name]),
          onclick: () => p.on.setStatus(on ? p.status.filter((x) => x !== name) : [...p.status, name]),
        },
        h("span", { class: "stg-swatch", style: `background:${statusSwatch(name).colour}` }),
        h("span", { class: "stg-label" }, `${name} ${p.counts.get(name) ?? 0}`),
      );
    }),
  );
}
