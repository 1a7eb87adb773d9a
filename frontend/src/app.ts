// The tab as one state machine: the view state (in the URL) and the data (ranking, series),
// changed only through update() and the data callbacks, each followed by one render() that
// shows every view of the current state. Views rebuild only when their props change (Slot),
// so render() never has to know which ones a change affects.
import { httpStatus, type LayerPoint, type Ranking, type Row, type Series } from "./api";
import { FALLBACK } from "./definitions";
import { Slot } from "./dom";
import { lastCall } from "./memo";
import { prefixesByRun } from "./names";
import { filterRows, filtersShowing, findRow, nextSort, reconcile, sortRows } from "./store";
import { compileTagFilter } from "./tagfilter";
import type { Theme } from "./theme";
import { writeState } from "./url";
import { detailView, scrollToCharts, type SeriesLoad } from "./views/detail";
import { findingsByRun, findingsView } from "./views/findings";
import { headerView } from "./views/header";
import { heatmaps, heatmapView } from "./views/heatmap";
import { noticeView } from "./views/notices";
import { profileLines, profileView } from "./views/profile";
import { keepRowInView, markSelectedRow, scoreBarPercent, shownRanks, tableView, type Reveal } from "./views/table";
import { roleOptions, statusCounts, toolbarView } from "./views/toolbar";
import { ALL_ROLES, type SortKey, type ViewState } from "./viewstate";

/** Data sources, latest-only (index.ts): a call that a newer one superseded never settles. */
export interface Fetchers {
  /** `fresh`: the user asked to reload, so wait for an answer over the newest data. */
  ranking(ratio: number | null, fresh: boolean): Promise<Ranking>;
  series(run: string, tag: string, ratio: number | null): Promise<Series>;
}

const TYPING_MS = 120; // tag filter: apply once typing pauses
const SERIES_KEPT = 32;
/** How soon to ask again while the server is refreshing the answer it gave (from its last complete one). */
const REFRESH_POLL_MS = 1000;

export class App {
  private ranking: Ranking | null = null;
  private rankingError: Error | null = null;
  /** The ranking request in flight; `again`: reload once it lands (the data changed meanwhile). */
  private loading: { ratio: number | null; since: number; again: boolean } | null = null;
  private hostRuns: string[] | null = null;
  private series = new Map<string, SeriesLoad>();
  /** The detail's last drawn series: kept on screen while a refreshed row's new series loads. */
  private drawn: { key: string; load: SeriesLoad } | null = null;
  /** The timer of the next poll while the server refreshes (REFRESH_POLL_MS). */
  private poll = 0;
  /** The tag filter as typed, until it is applied. */
  private tagDraft: string | null = null;
  private typing = 0;
  /**
   * What the next render scrolls into view, once the selected row is shown: the row (arrow
   * keys), or its charts with the row kept in sight above them (a click, a finding, Enter,
   * a link that selects a row). "charts" stays pending while the series loads.
   */
  private reveal: Reveal | null = null;

  private readonly header = new Slot(headerView);
  private readonly notice = new Slot(noticeView);
  private readonly findings = new Slot(findingsView);
  private readonly heatmap = new Slot(heatmapView);
  private readonly toolbar = new Slot(toolbarView);
  private readonly table = new Slot(tableView);
  private readonly detail = new Slot(detailView);
  private readonly profile = new Slot(profileView);

  // Derived data, recomputed only when their inputs change.
  private readonly filtered = lastCall(filterRows);
  private readonly sorted = lastCall(sortRows);
  private readonly ranks = lastCall(shownRanks);
  private readonly barPercent = lastCall(scoreBarPercent);
  private readonly roles = lastCall(roleOptions);
  private readonly counts = lastCall(statusCounts);
  private readonly findingGroups = lastCall(findingsByRun);
  private readonly lines = lastCall(profileLines);
  private readonly heat = lastCall(heatmaps);
  private readonly prefixes = lastCall((rows: readonly Row[]) => prefixesByRun(rows));

  /** Every handler the views call; one object, so views' props stay equal across renders. */
  private readonly on = {
    select: (row: Row, reveal: Reveal) => this.update({ sel: [row.run, row.tag] }, reveal),
    pickFinding: (row: Row) => {
      const params = this.ranking?.definitions.parameter_roles ?? FALLBACK.parameter_roles;
      this.update({ ...filtersShowing(this.state, row, params), sel: [row.run, row.tag] }, "charts");
    },
    pickLayer: (p: LayerPoint) => {
      const row = this.ranking && findRow(this.ranking, [p.run, p.tag]);
      if (row) this.update({ sel: [row.run, row.tag] });
    },
    sort: (key: SortKey) => this.update(nextSort(this.state, key)),
    clearFilters: () => {
      this.tagDraft = null;
      this.update({ tag: "", role: ALL_ROLES, status: [], hidden: [] });
    },
    setHidden: (hidden: string[]) => this.update({ hidden }),
    setRole: (role: string) => this.update({ role }),
    setStatus: (status: string[]) => this.update({ status }),
    setRatio: (ratio: number | null) => {
      const dflt = this.ranking?.definitions.default_ratio ?? FALLBACK.default_ratio;
      this.update({ ratio: ratio === dflt ? null : ratio });
    },
    typeTag: (tag: string) => {
      this.tagDraft = tag;
      window.clearTimeout(this.typing);
      this.typing = window.setTimeout(() => {
        this.tagDraft = null;
        this.update({ tag });
      }, TYPING_MS);
    },
    retry: () => this.load(true),
    refresh: () => this.load(true),
  };

  constructor(
    root: HTMLElement,
    private state: ViewState,
    private readonly fetchers: Fetchers,
    private theme: Theme,
  ) {
    root.append(...[this.header, this.notice, this.findings, this.heatmap, this.toolbar, this.table, this.detail, this.profile].map((s) => s.el));
    if (state.sel) this.reveal = "charts";
  }

  start(): void {
    this.load();
  }

  /** The one way the view state changes: write it to the URL, fetch what it needs, render. */
  update(patch: Partial<ViewState>, reveal: Reveal | null = null): void {
    const before = this.state;
    this.state = { ...before, ...patch };
    this.reveal = reveal;
    writeState(this.state);
    if (this.state.ratio !== before.ratio) this.load();
    this.render();
  }

  /** TensorBoard loaded new data: fetch the ranking again, keeping the view. */
  reload(): void {
    this.load();
  }

  setHostRuns(runs: string[]): void {
    this.hostRuns = runs;
    this.render();
  }

  setTheme(theme: Theme): void {
    this.theme = theme;
    this.render();
  }

  /**
   * Ask for the ranking. The server answers from its last complete result at once while it
   * makes a newer one (`refreshing`), which the next poll fetches; `fresh` (the user's own
   * reload or retry) waits for the newest data instead.
   */
  private load(fresh = false): void {
    const ratio = this.state.ratio;
    window.clearTimeout(this.poll);
    if (this.loading && this.loading.ratio === ratio && !fresh) {
      // Restarting would abort it: under frequent reloads a slow ranking would never land.
      this.loading.again = true;
      return;
    }
    this.loading = { ratio, since: this.loading?.since ?? performance.now(), again: false };
    this.fetchers.ranking(ratio, fresh).then(
      (r) => this.landed(r, null),
      (e: Error) => this.landed(null, e),
    );
    this.render();
  }

  private landed(r: Ranking | null, error: Error | null): void {
    const again = this.loading?.again ?? false;
    this.loading = null;
    this.rankingError = error;
    if (r) this.ranking = reconcile(this.ranking, r);
    if (again) this.load();
    else if (r?.freshness.refreshing) this.poll = window.setTimeout(() => this.load(), REFRESH_POLL_MS);
    const ranking = this.ranking;
    if (r && ranking && this.state.sel && !findRow(ranking, this.state.sel)) {
      this.update({ sel: null }); // the selected tag is gone: so is it from the URL
    } else {
      this.render();
    }
  }

  /**
   * The selected row's series: from cache, or asked for now. While a refreshed row's new
   * series loads, the detail keeps the one it shows for that tensor, so a background refresh
   * swaps charts instead of blanking them.
   */
  private seriesOf(row: Row): SeriesLoad {
    const ratio = this.state.ratio;
    const load = this.seriesLoad(row, ratio);
    const tensor = JSON.stringify([row.run, row.tag, ratio]);
    if (load.state === "loading" && this.drawn?.key === tensor) return this.drawn.load;
    if (load.state !== "loading") this.drawn = { key: tensor, load };
    return load;
  }

  private seriesLoad(row: Row, ratio: number | null): SeriesLoad {
    const key = JSON.stringify([row, ratio]); // a changed row (new data) needs a new series
    const known = this.series.get(key);
    if (known) return known;
    // A request still loading is superseded by this one and will never answer.
    for (const [k, v] of this.series) if (v.state === "loading") this.series.delete(k);
    const load: SeriesLoad = { state: "loading" };
    this.series.set(key, load);
    while (this.series.size > SERIES_KEPT) this.series.delete(this.series.keys().next().value!);
    const settle = (done: SeriesLoad) => {
      this.series.set(key, done);
      if (done.state === "ready" && done.series.freshness.refreshing) {
        // Answered from the server's last complete result: ask again shortly (drawn meanwhile).
        window.setTimeout(() => {
          if (this.series.get(key) !== done) return;
          this.series.delete(key);
          this.render();
        }, REFRESH_POLL_MS);
      }
      this.render();
    };
    this.fetchers.series(row.run, row.tag, ratio).then(
      (series) => settle({ state: "ready", series }),
      (e: Error) => settle({ state: "error", message: `Could not load the series${httpStatus(e)}: ${e.message}` }),
    );
    return load;
  }

  private render(): void {
    const s = this.state;
    const r = this.ranking;
    this.header.show({ status: this.statusLine(), asOf: this.ranking?.freshness.as_of ?? null, on: this.on });
    this.notice.show(this.noticeProps());
    if (!r || !r.rows.length) {
      for (const slot of [this.findings, this.heatmap, this.toolbar, this.table, this.detail, this.profile]) slot.show(null);
      return;
    }
    const defs = r.definitions;
    const filters = { tag: s.tag, role: s.role, status: s.status, hidden: s.hidden };
    const tagError = compileTagFilter(this.tagDraft ?? s.tag).error;
    const groups = this.findingGroups(r, s.hidden);
    const prefixes = this.prefixes(r.rows);
    this.findings.show(groups && { groups, runs: r.runs, kinds: defs.finding_kinds, sel: s.sel, prefixes, on: this.on });
    const heat = this.heat(r, s.hidden, defs.parameter_roles);
    this.heatmap.show(heat.maps.length ? { maps: heat.maps, scale: heat.scale, runs: r.runs, sel: s.sel, prefixes, on: this.on } : null);
    this.toolbar.show({
      runs: r.runs,
      hidden: s.hidden,
      ratio: s.ratio ?? r.ratio ?? defs.default_ratio,
      tag: this.tagDraft ?? s.tag,
      tagError,
      roles: this.roles(r, s.hidden, s.role),
      role: s.role,
      statuses: defs.statuses,
      status: s.status,
      counts: this.counts(r, filters),
      on: this.on,
    });
    const shown = this.filtered(r, filters);
    const rows = this.sorted(shown, s.sort, s.desc, defs.statuses);
    this.table.show({ rows, ranks: this.ranks(shown), total: r.rows.length, runs: r.runs, sort: s.sort, desc: s.desc, defs, barPercent: this.barPercent(r.rows), tagError, prefixes, on: this.on });
    const tr = markSelectedRow(this.table.el, s.sel);
    const row = findRow(r, s.sel);
    const load = row && this.seriesOf(row);
    this.detail.show({ row, load, runs: r.runs, defs, theme: this.theme });
    const lines = this.lines(r, s.hidden);
    this.profile.show(r.layers.length ? { lines, runs: r.runs, sel: s.sel, statuses: defs.statuses, theme: this.theme, on: this.on } : null);
    this.scrollToSelection(tr, load);
  }

  /** Carry out a pending reveal (see `reveal`); the page is fully rendered by now. */
  private scrollToSelection(tr: HTMLTableRowElement | null, load: SeriesLoad | null): void {
    if (!this.reveal) return;
    if (!tr) {
      this.reveal = null; // the selection is not among the shown rows: nothing to scroll to
      return;
    }
    tr.focus({ preventScroll: true });
    if (this.reveal === "row") {
      tr.scrollIntoView({ block: "nearest" });
    } else {
      const show = () => {
        scrollToCharts(this.detail.el);
        keepRowInView(tr);
      };
      if (load?.state === "loading") {
        show(); // the place the charts will take; again once they are drawn
        return;
      }
      // A chart takes its width once attached (mountChart): measure after it has.
      requestAnimationFrame(() => requestAnimationFrame(show));
    }
    this.reveal = null;
  }

  private statusLine(): string {
    if (!this.ranking) return "";
    if (this.loading || this.ranking.freshness.refreshing) return "updating…";
    return this.rankingError ? `update failed: ${this.rankingError.message}` : "";
  }

  private noticeProps() {
    if (this.ranking) {
      if (!this.ranking.rows.length) return { kind: "empty" as const, hostRuns: this.hostRuns };
      const thinned = this.ranking.thinned;
      return Object.keys(thinned).length ? { kind: "thinned" as const, runs: thinned, flag: this.ranking.definitions.keep_all_flag } : null;
    }
    if (this.loading) return { kind: "loading" as const, since: this.loading.since };
    if (this.rankingError) return { kind: "error" as const, error: this.rankingError, retry: this.on.retry };
    return null;
  }
}
