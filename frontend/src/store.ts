// Pure functions of (view state, ranking): which rows, findings and profile points the
// tab shows, in which order, at which scale. No DOM, so the tests run them in node.
import type { Finding, LayerPoint, Ranking, Row } from "./api";
import { meaning, type Term } from "./definitions";
import { ALL_ROLES, PARAMETERS, type Selection, type SortKey, type ViewState } from "./viewstate";

/** The part of the view state that decides which rows show. */
export type Filters = Pick<ViewState, "tag" | "role" | "status" | "hidden">;

const rowKey = (run: string, tag: string): string => `${run}\u0000${tag}`;

export function tagFilter(tag: string): { re: RegExp | null; error: string | null } {
  if (!tag) return { re: null, error: null };
  try {
    return { re: new RegExp(tag, "i"), error: null };
  } catch {
    return { re: null, error: "invalid regex" };
  }
}

function roleMatches(role: string, filter: string, parameterRoles: readonly string[]): boolean {
  if (filter === ALL_ROLES) return true;
  if (filter === PARAMETERS) return parameterRoles.includes(role);
  return role === filter;
}

function visibleRuns(runs: readonly string[], hidden: readonly string[]): string[] {
  return runs.filter((r) => !hidden.includes(r));
}

/** Rows passing every filter; an invalid tag regex filters nothing (the toolbar says why). */
export function filterRows(ranking: Ranking, f: Filters, ignoreStatus = false): Row[] {
  const { re } = tagFilter(f.tag);
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

/** Missing and NaN values sort after every number. */
function compareNumbers(a: number | null, b: number | null): number {
  const okA = a !== null && !Number.isNaN(a);
  const okB = b !== null && !Number.isNaN(b);
  if (!okA || !okB) return Number(!okA) - Number(!okB);
  return (a as number) - (b as number);
}

/**
 * Each shown row's place in the server's ranking counted among the shown rows only (1 =
 * most moving), so the # column runs 1, 2, 3, ... over what the filters let through
 * instead of skipping the gradients and runs they hide.
 */
export function shownRanks(rows: readonly Row[]): Map<Row, number> {
  return new Map([...rows].sort((a, b) => a.rank - b.rank).map((row, i) => [row, i + 1]));
}

/** Clicking a column: the same one flips direction; a new one starts numbers largest first. */
export function nextSort(current: Pick<ViewState, "sort" | "desc">, key: SortKey): Pick<ViewState, "sort" | "desc"> {
  if (current.sort === key) return { sort: key, desc: !current.desc };
  return { sort: key, desc: key === "score" || key === "net" || key === "last_step" };
}

/**
 * Bar length (percent) of a score on a log scale spanning every positive score of the
 * ranking, filters or not, so bars compare across filters. Zero and missing scores: 0.
 */
export function scoreScale(rows: readonly Row[]): (v: number | null) => number {
  let lo = Infinity;
  let hi = -Infinity;
  for (const { score } of rows) {
    if (score !== null && Number.isFinite(score) && score > 0) {
      lo = Math.min(lo, score);
      hi = Math.max(hi, score);
    }
  }
  const l0 = Math.log10(lo);
  const l1 = Math.log10(hi);
  return (v) => {
    if (v === null || !Number.isFinite(v) || v <= 0 || !Number.isFinite(l0)) return 0;
    if (l1 - l0 < 1e-9) return 100;
    return 6 + (94 * (Math.log10(v) - l0)) / (l1 - l0);
  };
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

export function selectedRow(ranking: Ranking, sel: Selection | null): Row | null {
  if (!sel) return null;
  return ranking.rows.find((r) => r.run === sel[0] && r.tag === sel[1]) ?? null;
}

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
  return visibleRuns(ranking.runs, hidden).map((run) => ({
    run,
    items: findings.filter((f) => f.run === run).map((finding) => ({ finding, target: findingTarget(ranking, finding) })),
  }));
}

/** A finding's row: its first tag that is a row of its run, else its first layer's main tag. */
function findingTarget(ranking: Ranking, f: Finding): Row | null {
  for (const tag of f.tags) {
    const row = selectedRow(ranking, [f.run, tag]);
    if (row) return row;
  }
  for (const layer of f.layers) {
    const main = ranking.layers.find((l) => l.run === f.run && l.layer === layer);
    const row = main ? selectedRow(ranking, [f.run, main.tag]) : null;
    if (row) return row;
  }
  return null;
}

/** The smallest change of filters that shows `row` (empty when it shows already). */
export function revealPatch(f: Filters, row: Row, parameterRoles: readonly string[]): Partial<ViewState> {
  const patch: Partial<ViewState> = {};
  if (f.hidden.includes(row.run)) patch.hidden = f.hidden.filter((r) => r !== row.run);
  if (!roleMatches(row.role, f.role, parameterRoles)) patch.role = ALL_ROLES;
  const { re } = tagFilter(f.tag);
  if (re && !re.test(row.tag)) patch.tag = "";
  if (f.status.length && !f.status.includes(row.status)) patch.status = [];
  return patch;
}

/**
 * Keyboard navigation in the table: the index a key moves to from `current` (-1: no row
 * focused) among `count` rows, or null for a key that does not navigate. Enter and Space
 * answer the current row itself (select it).
 */
export function keyTarget(key: string, current: number, count: number): number | null {
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

export interface ProfileLine {
  run: string;
  /** The run's layers in model order. */
  points: LayerPoint[];
}

/** One line per shown run that has layers, for the drift-versus-depth profile. */
export function profileLines(ranking: Ranking, hidden: readonly string[]): ProfileLine[] {
  return visibleRuns(ranking.runs, hidden)
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
