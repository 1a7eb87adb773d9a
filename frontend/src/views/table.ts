// The ranking table: one row per tag, sortable columns, a sparkline per row (drawn when it
// scrolls into view), keyboard navigation.
import type { Row } from "../api";
import { mountSparkline } from "../charts/sparkline";
import { explain, type Definitions } from "../definitions";
import { h, type Scope } from "../dom";
import { axisLabel, axisName, fmt, fmtSci, fmtStep } from "../format";
import { runColour, statusSwatch } from "../palette";
import { keyTarget } from "../store";
import type { Selection, SortKey } from "../viewstate";
import { runLabel, statusBadge } from "./parts";

/** What a selection brings into view: the row alone (arrow keys), or its charts too (click, Enter). */
export type Reveal = "row" | "charts";

export interface TableHandlers {
  sort(key: SortKey): void;
  select(row: Row, reveal: Reveal): void;
  clearFilters(): void;
}

export interface TableProps {
  rows: readonly Row[];
  /** Each row's rank among the shown rows (store.shownRanks): what the # column says. */
  ranks: ReadonlyMap<Row, number>;
  total: number;
  runs: readonly string[];
  sort: SortKey;
  desc: boolean;
  defs: Definitions;
  scale: (score: number | null) => number;
  /** Why the tag filter filters nothing, if it is not a valid regex. */
  tagError: string | null;
  on: TableHandlers;
}

interface Column {
  key: SortKey | null;
  label: string;
  num?: boolean;
  title?: string;
}

const COLUMNS: Column[] = [
  { key: "rank", label: "#", num: true, title: "Rank by movement among the rows shown (most-moving first)" },
  { key: "tag", label: "layer / tag" },
  { key: "run", label: "run" },
  { key: "role", label: "role" },
  { key: "status", label: "status" },
  { key: "score", label: "movement (log)", title: "Median movement per step: histogram drift, or the exact or checkpoint update ratio (see source)" },
  { key: "net", label: "net", num: true, title: "Normalised W1 between the first and the last kept histogram" },
  { key: null, label: "over time", title: "Movement per step (or per checkpoint) over the tag's history, oldest first" },
  { key: "last_step", label: "last step", num: true },
  { key: "source", label: "source", title: "The measurement behind the movement score" },
];

export function tableView(p: TableProps, scope: Scope): HTMLElement {
  const tbody = h("tbody", { onkeydown: (ev: Event) => onKey(ev as KeyboardEvent, p) });
  const wrap = h("div", { class: "stg-table-wrap", "data-scroll-key": "table" }, h("table", { class: "stg-table" }, head(p), tbody));
  // Sparklines are drawn when their row comes near the visible part of the table.
  const pending = new Map<Element, Row>();
  const observer = new IntersectionObserver(
    (entries) => {
      for (const e of entries) {
        const row = pending.get(e.target);
        if (!e.isIntersecting || !row) continue;
        pending.delete(e.target);
        observer.unobserve(e.target);
        if (row.sparkline.length) mountSparkline(e.target as HTMLElement, row.sparkline, statusSwatch(row.status).colour, scope);
      }
    },
    { root: wrap, rootMargin: "200px" },
  );
  scope.add(() => observer.disconnect());
  for (const row of p.rows) {
    const spark = h("div", { class: "stg-spark" });
    tbody.append(rowView(row, spark, p));
    pending.set(spark, row);
    observer.observe(spark);
  }
  if (!p.rows.length) tbody.append(noRows(p));
  return h(
    "section",
    { class: "stg-card", "aria-label": "Ranking" },
    h(
      "div",
      { class: "stg-tablehead" },
      h("span", { class: "stg-count stg-strong" }, `${p.rows.length} of ${p.total} tags`),
      h("span", { class: "stg-count" }, "Click a row, or use ↑ ↓ and Enter, to see its movement over steps. Column headers sort."),
    ),
    wrap,
  );
}

/** Mark the selected row (roving tabindex); returns its element, if it is shown. */
export function showSelection(el: HTMLElement, sel: Selection | null): HTMLTableRowElement | null {
  const trs = Array.from(el.querySelectorAll<HTMLTableRowElement>("tr[data-run]"));
  let selected: HTMLTableRowElement | null = null;
  for (const tr of trs) {
    const on = !!sel && tr.dataset.run === sel[0] && tr.dataset.tag === sel[1];
    if (on) selected = tr;
    tr.setAttribute("aria-selected", String(on));
    tr.tabIndex = -1;
  }
  const focusable = selected ?? trs[0];
  if (focusable) focusable.tabIndex = 0;
  return selected;
}

/**
 * Scroll the table (not the page) so that `tr` lies in the part of it the window shows,
 * centred there if it has to move: after the page scrolled to the charts, the selected row
 * stays in sight above them.
 */
export function keepRowInView(tr: HTMLTableRowElement): void {
  const wrap = tr.closest<HTMLElement>(".stg-table-wrap");
  if (!wrap) return;
  const box = wrap.getBoundingClientRect();
  const header = wrap.querySelector("thead")?.getBoundingClientRect().height ?? 0;
  const top = Math.max(box.top + header, 0);
  const bottom = Math.min(box.bottom, window.innerHeight);
  const row = tr.getBoundingClientRect();
  if (bottom - top < row.height || (row.top >= top && row.bottom <= bottom)) return;
  wrap.scrollTop += (row.top + row.bottom) / 2 - (top + bottom) / 2;
}

function head(p: TableProps): HTMLElement {
  return h(
    "thead",
    null,
    h(
      "tr",
      null,
      COLUMNS.map((c) => {
        const sorted = c.key !== null && p.sort === c.key;
        return h(
          "th",
          { class: c.num ? "num" : null, scope: "col", title: c.title ?? null, "aria-sort": sorted ? (p.desc ? "descending" : "ascending") : null },
          c.key === null
            ? h("span", { class: "stg-th" }, c.label)
            : h("button", { type: "button", "data-focus-key": `sort:${c.key}`, onclick: () => p.on.sort(c.key!) }, c.label),
        );
      }),
    ),
  );
}

function rowView(row: Row, spark: HTMLElement, p: TableProps): HTMLElement {
  const swatch = statusSwatch(row.status);
  const params = p.defs.parameter_roles.includes(row.role);
  return h(
    "tr",
    {
      tabindex: "-1",
      "aria-selected": "false",
      class: params ? null : "stg-nonparam",
      "data-run": row.run,
      "data-tag": row.tag,
      "data-status": row.status,
      "data-focus-key": JSON.stringify([row.run, row.tag]),
      onclick: () => p.on.select(row, "charts"),
    },
    h("td", { class: "num" }, String(p.ranks.get(row) ?? "")),
    h("td", { title: row.tag }, tagCell(row)),
    h("td", { title: row.run }, runLabel(row.run, runColour(row.run, p.runs))),
    h("td", { title: explain(p.defs.roles, row.role) }, row.role),
    h("td", null, statusBadge(row.status, p.defs)),
    h(
      "td",
      { title: `score ${fmt(row.score, 4)} per ${axisName(row.axis)}${row.threshold !== null ? `; stagnant threshold ${fmt(row.threshold)}` : ""}` },
      h(
        "div",
        { class: "stg-score" },
        h("div", { class: "stg-bar" }, h("div", { style: `width:${p.scale(row.score).toFixed(1)}%;background:${swatch.colour}` })),
        h("span", { class: "stg-score-val" }, fmtSci(row.score)),
      ),
    ),
    h("td", { class: "num" }, fmt(row.net)),
    h("td", null, spark),
    h("td", { class: "num", title: row.axis === "step" ? null : `counted in ${axisLabel(row.axis)}` }, lastStep(row)),
    h("td", { title: explain(p.defs.sources, row.source) }, h("span", { class: row.source === "histogram" ? "stg-src" : "stg-src-measured" }, row.source)),
  );
}

function lastStep(row: Row): string {
  const step = fmtStep(row.last_step);
  return row.axis === "step" ? step : `${step} (${axisName(row.axis)})`;
}

/** The tag on one line, its layer part emphasised; the layer named apart when not a prefix. */
function tagCell(row: Row): HTMLElement {
  const { layer, tag } = row;
  if (layer && tag.startsWith(layer) && tag.length > layer.length) {
    return h("div", { class: "stg-tagcell" }, h("span", { class: "stg-layer" }, layer), h("span", { class: "stg-rest" }, tag.slice(layer.length)));
  }
  return h(
    "div",
    { class: "stg-tagcell" },
    h("span", { class: "stg-layer" }, tag),
    layer && layer !== tag ? h("span", { class: "stg-rest" }, `  (layer ${layer})`) : null,
  );
}

function noRows(p: TableProps): HTMLElement {
  return h(
    "tr",
    null,
    h(
      "td",
      { colspan: String(COLUMNS.length), class: "stg-empty" },
      p.tagError ? "The tag filter is not a valid regular expression. " : "No tags match the filters. ",
      h("button", { class: "stg-btn", type: "button", onclick: () => p.on.clearFilters() }, "clear filters"),
    ),
  );
}

function onKey(ev: KeyboardEvent, p: TableProps): void {
  const trs = Array.from((ev.currentTarget as HTMLElement).querySelectorAll("tr[data-run]"));
  const current = trs.indexOf(document.activeElement as Element);
  const next = keyTarget(ev.key, current, trs.length);
  if (next === null) return;
  ev.preventDefault();
  if (ev.key === "Enter" || ev.key === " ") p.on.select(p.rows[next], "charts");
  else if (next !== current) p.on.select(p.rows[next], "row");
}
