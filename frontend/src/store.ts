// Pure functions of (view state, ranking) that more than one view, or the app, needs: which
// rows pass the filters and in which order, the row at a selection, the filter change that
// shows a row, and keeping unchanged data's identity across reloads. What one view alone
// derives lives beside that view. No DOM, so the tests run them in node.
import type { Ranking, Row } from "./api";
import type { Term } from "./definitions";
import { compileTagFilter } from "./tagfilter";
import { ALL_ROLES, PARAMETERS, type Selection, type SortKey, type ViewState } from "./viewstate";

/** The part of the view state that decides which rows show. */
export type Filters = Pick<ViewState, "tag" | "role" | "status" | "hidden">;

const rowKey = (run: string, tag: string): string => `${run}\u0000${tag}`;

function roleMatches(role: string, filter: string, parameterRoles: readonly string[]): boolean {
  if (filter === ALL_ROLES) return true;
  if (filter === PARAMETERS) return parameterRoles.includes(role);
  return role === filter;
}

/** The runs not switched off, in their order. */
export function shownRuns(runs: readonly string[], hidden: readonly string[]): string[] {
  return runs.filter((r) => !hidden.includes(r));
}

/** Rows passing every filter; a refused tag regex filters nothing (the toolbar says why). */
export function filterRows(ranking: Ranking, f: Filters, ignoreStatus = false): Row[] {
  const { re } = compileTagFilter(f.tag);
  const params = ranking.definitions.parameter_roles;
  return ranking.rows.filter(
    (row) =>
      !f.hidden.includes(row.run) &&
      (!re || re.test(row.tag)) &&
      roleMatches(row.role, f.role, params) &&
      (ignoreStatus || !f.status.length || f.status.includes(row.status)),
  );
}

/** Rows sorted by a column; ties (and the "rank" column) keep the server's ranking. */
export function sortRows(rows: readonly Row[], sort: SortKey, desc: boolean, statuses: readonly Term[]): Row[] {
  const order = (s: string) => {
    const i = statuses.findIndex((t) => t.name === s);
    return i < 0 ? statuses.length : i;
  };
  const cmp: Record<SortKey, (a: Row, b: Row) => number> = {
    rank: (a, b) => a.rank - b.rank,
    tag: (a, b) => a.layer.localeCompare(b.layer) || a.tag.localeCompare(b.tag),
    run: (a, b) => a.run.localeCompare(b.run),
    role: (a, b) => a.role.localeCompare(b.role),
    status: (a, b) => order(a.status) - order(b.status),
    score: (a, b) => compareNumbers(a.score, b.score),
    net: (a, b) => compareNumbers(a.net, b.net),
    last_step: (a, b) => compareNumbers(a.last_step, b.last_step),
    source: (a, b) => a.source.localeCompare(b.source),
  };
  const dir = desc ? -1 : 1;
  return [...rows].sort((a, b) => dir * cmp[sort](a, b) || a.rank - b.rank);
}

/** Missing values sort after every number. */
function compareNumbers(a: number | null, b: number | null): number {
  if (a === null || b === null) return Number(a === null) - Number(b === null);
  return a - b;
}

/** Clicking a column: the same one flips direction; a new one starts numbers largest first. */
export function nextSort(current: Pick<ViewState, "sort" | "desc">, key: SortKey): Pick<ViewState, "sort" | "desc"> {
  if (current.sort === key) return { sort: key, desc: !current.desc };
  return { sort: key, desc: key === "score" || key === "net" || key === "last_step" };
}

/** The row of run `sel[0]` and tag `sel[1]`, if the ranking holds it. */
export function findRow(ranking: Ranking, sel: Selection | null): Row | null {
  if (!sel) return null;
  return ranking.rows.find((r) => r.run === sel[0] && r.tag === sel[1]) ?? null;
}

/** The smallest change of filters that shows `row` (empty when it shows already). */
export function filtersShowing(f: Filters, row: Row, parameterRoles: readonly string[]): Partial<ViewState> {
  const patch: Partial<ViewState> = {};
  if (f.hidden.includes(row.run)) patch.hidden = f.hidden.filter((r) => r !== row.run);
  if (!roleMatches(row.role, f.role, parameterRoles)) patch.role = ALL_ROLES;
  const { re } = compileTagFilter(f.tag);
  if (re && !re.test(row.tag)) patch.tag = "";
  if (f.status.length && !f.status.includes(row.status)) patch.status = [];
  return patch;
}

/**
 * `next` with every part equal to `prev`'s replaced by `prev`'s object (`prev` itself when
 * nothing changed). A reload that changed nothing, or one row, then leaves every memoised
 * view of the unchanged parts as it is: charts are not redrawn, the table keeps its place.
 */
export function reconcile(prev: Ranking | null, next: Ranking): Ranking {
  if (!prev) return next;
  const merged: Ranking = {
    ratio: next.ratio,
    runs: reuse(prev.runs, next.runs, (r) => r),
    rows: reuse(prev.rows, next.rows, (r) => rowKey(r.run, r.tag)),
    layers: reuse(prev.layers, next.layers, (l) => rowKey(l.run, l.layer)),
    findings: prev.findings && next.findings ? reuse(prev.findings, next.findings, (_f, i) => String(i)) : next.findings,
    thinned: same(prev.thinned, next.thinned) ? prev.thinned : next.thinned,
    definitions: same(prev.definitions, next.definitions) ? prev.definitions : next.definitions,
    freshness: same(prev.freshness, next.freshness) ? prev.freshness : next.freshness,
  };
  const keys = Object.keys(merged) as (keyof Ranking)[];
  return keys.every((k) => merged[k] === prev[k]) ? prev : merged;
}

function reuse<T>(prev: readonly T[], next: readonly T[], key: (t: T, i: number) => string): T[] {
  const old = new Map(prev.map((t, i) => [key(t, i), t]));
  let changed = prev.length !== next.length;
  const out = next.map((t, i) => {
    const o = old.get(key(t, i));
    const kept = o !== undefined && same(o, t) ? o : t;
    if (kept !== prev[i]) changed = true;
    return kept;
  });
  return changed ? out : (prev as T[]);
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
