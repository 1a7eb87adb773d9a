// The ranking table: one row per tag, sortable columns, a sparkline per row (drawn when it
// scrolls into view), keyboard navigation.
import type { Row } from "../api";
import { mountSparkline } from "../charts/sparkline";
import { explain, type Definitions } from "../definitions";
import { h, type Scope } from "../dom";
import { axisLabel, axisName, elide, fmt, fmtStep } from "../format";
import { NAME_MAX, shortName } from "../names";
import { runColour, statusSwatch } from "../palette";
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
  /** Each row's rank among the shown rows (shownRanks): what the # column says. */
  ranks: ReadonlyMap<Row, number>;
  total: number;
  runs: readonly string[];
  sort: SortKey;
  desc: boolean;
  defs: Definitions;
  /** A score's bar length in percent (scoreBarPercent). */
  barPercent: (score: number | null) => number;
  /** Why the tag filter filters nothing, if it is refused. */
  tagError: string | null;
  /** run -> the prefix every layer of it shares, left out of the names shown (prefixesByRun). */
  prefixes: ReadonlyMap<string, string>;
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

/**
 * Each shown row's place in the server's ranking counted among the shown rows only (1 =
 * most moving), so the # column runs 1, 2, 3, ... over what the filters let through
 * instead of skipping the gradients and runs they hide.
 */
export function shownRanks(rows: readonly Row[]): Map<Row, number> {
  return new Map([...rows].sort((a, b) => a.rank - b.rank).map((row, i) => [row, i + 1]));
}

/**
 * Bar length (percent) of a score on a log scale spanning every positive score of the
 * ranking, filters or not, so bars compare across filters. Zero and missing scores: 0.
 */
export function scoreBarPercent(rows: readonly Row[]): (v: number | null) => number {
  let lo = Infinity;
  let hi = -Infinity;
  for (const { score } of rows) {
    if (score !== null && score > 0) {
      lo = Math.min(lo, score);
      hi = Math.max(hi, score);
    }
  }
  const l0 = Math.log10(lo);
  const l1 = Math.log10(hi);
  return (v) => {
    if (v === null || v <= 0 || !Number.isFinite(l0)) return 0;
    if (l1 - l0 < 1e-9) return 100;
    return 6 + (94 * (Math.log10(v) - l0)) / (l1 - l0);
  };
}

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
      prefixNote(p.prefixes),
    ),
    wrap,
  );
}

/** Mark the selected row (roving tabindex); returns its element, if it is shown. */
export function markSelectedRow(el: HTMLElement, sel: Selection | null): HTMLTableRowElement | null {
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
    h("td", { title: row.tag }, tagCell(row, p.prefixes.get(row.run) ?? "")),
    h("td", { title: row.run }, runLabel(row.run, runColour(row.run, p.runs))),
    h("td", { title: explain(p.defs.roles, row.role) }, row.role),
    h("td", null, statusBadge(row.status, p.defs)),
    h(
      "td",
      { title: `score ${fmt(row.score, 4)} per ${axisName(row.axis)}${row.threshold !== null ? `; stagnant threshold ${fmt(row.threshold)}` : ""}` },
      h(
        "div",
        { class: "stg-score" },
        h("div", { class: "stg-bar" }, h("div", { style: `width:${p.barPercent(row.score).toFixed(1)}%;background:${swatch.colour}` })),
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

/** What the shown names leave out, said once: the prefixes runs' layers share. */
function prefixNote(prefixes: ReadonlyMap<string, string>): HTMLElement | null {
  const shared = [...new Set(prefixes.values())];
  if (!shared.length) return null;
  const runs = prefixes.size === 1 ? ` (every layer of run ${[...prefixes.keys()][0]})` : "";
  return h("span", { class: "stg-count stg-prefix-note" }, `Names shown without ${shared.join(", ")}${runs}; hover a name for all of it.`);
}

/**
 * The tag on one line without its run's common prefix, its layer part emphasised; the layer
 * named apart when not a prefix; elided in the middle when still too long (the cell's title
 * has the full name).
 */
function tagCell(row: Row, prefix: string): HTMLElement {
  const tag = shortName(row.tag, prefix, Infinity);
  const layer = row.layer && shortName(row.layer, prefix, Infinity);
  if (tag.length > NAME_MAX) return h("div", { class: "stg-tagcell" }, h("span", { class: "stg-layer" }, elide(tag, NAME_MAX)));
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
      p.tagError ? "The tag filter is refused (see the filter). " : "No tags match the filters. ",
      h("button", { class: "stg-btn", type: "button", onclick: () => p.on.clearFilters() }, "clear filters"),
    ),
  );
}

function onKey(ev: KeyboardEvent, p: TableProps): void {
  const trs = Array.from((ev.currentTarget as HTMLElement).querySelectorAll("tr[data-run]"));
  const current = trs.indexOf(document.activeElement as Element);
  const next = rowAfterKey(ev.key, current, trs.length);
  if (next === null) return;
  ev.preventDefault();
  if (ev.key === "Enter" || ev.key === " ") p.on.select(p.rows[next], "charts");
  else if (next !== current) p.on.select(p.rows[next], "row");
}

/**
 * Keyboard navigation: the index of the row a key moves to from `current` (-1: no row
 * focused) among `count` rows, or null for a key that does not navigate. Enter and Space
 * answer the current row itself (select it).
 */
export function rowAfterKey(key: string, current: number, count: number): number | null {
  if (count <= 0) return null;
  const last = count - 1;
  switch (key) {
    case "ArrowDown":
      return Math.min(last, current + 1);
    case "ArrowUp":
      return Math.max(0, current - 1);
    case "Home":
      return 0;
    case "End":
      return last;
    case "PageDown":
      return Math.min(last, Math.max(current, 0) + 10);
    case "PageUp":
      return Math.max(0, current - 10);
    case "Enter":
    case " ":
      return current >= 0 ? current : null;
    default:
      return null;
  }
}

/** Scores in one aligned format, so a column of them lines up: 6.46e-3. */
function fmtSci(v: number | null): string {
  if (v === null || v === 0) return fmt(v);
  const [m, e] = v.toExponential(2).split("e");
  return `${m}e${Number(e)}`;
}
