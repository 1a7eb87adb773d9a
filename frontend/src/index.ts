// The Stagnation tab: which layers are actually learning?
// Entry point loaded by TensorBoard's data/plugin_entry.html: `import("./index.js").then(m => m.render())`.
import uplotCss from "uplot/dist/uPlot.min.css";
import { ApiError, fetchRanking, fetchSeries, type LayerPoint, type Ranking, type Row, type Series } from "./api";
import { ChartBox, distributionOptions, profileOptions, rateOptions, sparkline } from "./charts";
import { HostClient } from "./host";
import { decodeState, readOwnHash, readParentHash, writeState, PLUGIN, type ViewState } from "./state";
import { CSS } from "./style";
import { watchTheme } from "./theme";
import {
  clear, escapeRegExp, fmt, fmtStep, h, PARAM_ROLES, ROLES, runColour, STATUS_INFO, STATUSES, statusColour,
} from "./util";

type SortKey = "rank" | "tag" | "run" | "role" | "status" | "score" | "net" | "last_step" | "source";

const COLUMNS: { key: SortKey | null; label: string; num?: boolean; title?: string }[] = [
  { key: "rank", label: "#", num: true, title: "Rank by movement (most-moving first)" },
  { key: "tag", label: "layer / tag" },
  { key: "run", label: "run" },
  { key: "role", label: "role" },
  { key: "status", label: "status" },
  { key: "score", label: "movement (log)", title: "Median drift per step (normalised Wasserstein-1 ÷ step gap), or the median exact update ratio per step" },
  { key: "net", label: "net", num: true, title: "Normalised W1 between the first and the last kept histogram" },
  { key: null, label: "drift over steps" },
  { key: "last_step", label: "last step", num: true },
  { key: "source", label: "source", title: "exact: the logged update ratio ||ΔW||/||W|| per step; histogram: drift between histograms" },
];

const rowKey = (run: string, tag: string) => `${run}\u0000${tag}`;

/** Scores in one aligned format: 6.46e-3. */
function fmtSci(v: number | null): string {
  if (v === null || !Number.isFinite(v) || v === 0) return fmt(v);
  const [m, e] = v.toExponential(2).split("e");
  return `${m}e${Number(e)}`;
}

/** The tag on one line, its layer part emphasised; the layer named apart when not a prefix. */
function tagCell(row: Row): HTMLElement {
  const { layer, tag } = row;
  const cell = h("div", { class: "stg-tagcell" });
  if (layer && tag.startsWith(layer) && tag.length > layer.length) {
    cell.append(h("span", { class: "stg-layer" }, layer), h("span", { class: "stg-rest" }, tag.slice(layer.length)));
  } else {
    cell.append(h("span", { class: "stg-layer" }, tag));
    if (layer && layer !== tag) cell.append(h("span", { class: "stg-rest" }, `  (layer ${layer})`));
  }
  return cell;
}

function cmpNum(a: number | null, b: number | null): number {
  const ok = (v: number | null) => v !== null && !Number.isNaN(v);
  if (!ok(a) && !ok(b)) return 0;
  if (!ok(a)) return 1;
  if (!ok(b)) return -1;
  return (a as number) - (b as number);
}

class App {
  private state: ViewState;
  private host = new HostClient();
  private ranking: Ranking | null = null;
  private hostRuns: string[] | null = null;
  private loading = false;
  private reloadQueued = false;
  private reloadTimer = 0;
  private rankingAbort: AbortController | null = null;
  private seriesAbort: AbortController | null = null;
  private seriesCache = new Map<string, Series>();
  private regexError: string | null = null;
  private sparkObserver: IntersectionObserver | null = null;
  private sparks: { destroy(): void }[] = [];
  private visibleRows: Row[] = [];

  // DOM
  private root = h("div", { id: "stg-app" });
  private updating = h("span", { class: "stg-updating", "aria-live": "polite" });
  private runChips = h("div", { class: "stg-chips", role: "group", "aria-label": "Runs" });
  private tagInput = h("input", { type: "text", placeholder: "regex, e.g. conv|dense", "aria-label": "Filter tags by regular expression", spellcheck: "false" });
  private tagInvalid = h("span", { class: "stg-invalid", role: "alert" });
  private roleSelect = h("select", { "aria-label": "Filter by role" });
  private statusChips = h("div", { class: "stg-chips", role: "group", "aria-label": "Filter by status" });
  private ratioInput = h("input", { type: "number", min: "0.0001", max: "1", step: "0.005", "aria-label": "Stagnant threshold ratio" });
  private count = h("span", { class: "stg-count" });
  private main = h("div");
  private tableCard = h("section", { class: "stg-card", "aria-label": "Ranking" });
  private tableWrap = h("div", { class: "stg-table-wrap" });
  private thead = h("thead");
  private tbody = h("tbody");
  private detailCard = h("section", { class: "stg-card", "aria-label": "Selected tag" });
  private profileCard = h("section", { class: "stg-card", "aria-label": "Drift versus depth" });
  private distChart: ChartBox | null = null;
  private rateChart: ChartBox | null = null;
  private profileChart: ChartBox | null = null;
  private shownSeries: { s: Series; row: Row } | null = null;

  constructor() {
    // The iframe's own hash survives a reload of the iframe; TensorBoard's hash (our
    // p.stagnation.<key> keys) survives a reload of the whole page.
    const own = readOwnHash();
    this.state = decodeState(Object.keys(own).length ? own : readParentHash());
  }

  async start(): Promise<void> {
    const style = document.createElement("style");
    style.textContent = uplotCss + "\n" + CSS;
    document.head.appendChild(style);
    let meta = document.querySelector('meta[name="viewport"]');
    if (!meta) {
      meta = h("meta", { name: "viewport", content: "width=device-width, initial-scale=1" });
      document.head.appendChild(meta);
    }
    if (!document.title) document.title = "Stagnation";
    document.body.appendChild(this.root);
    this.buildSkeleton();
    watchTheme((dark) => {
      document.documentElement.classList.toggle("dark", dark);
      this.redrawCharts();
    });

    if (this.host.connect()) {
      this.root.dataset.host = "tensorboard";
      const reload = () => {
        this.scheduleReload();
        return null;
      };
      this.host.listen("experimental.RunsChanged", (payload) => {
        if (Array.isArray(payload)) this.hostRuns = payload.map(String);
        return reload();
      });
      this.host.listen("experimental.DataReloaded", () => {
        this.root.dataset.reloads = String(Number(this.root.dataset.reloads ?? 0) + 1);
        return reload();
      });
      this.host
        .request<unknown>("experimental.GetRuns", null, 5000)
        .then((runs) => {
          if (Array.isArray(runs)) {
            this.hostRuns = runs.map(String);
            this.root.dataset.hostRuns = String(runs.length); // visible to tests and curious users
            if (this.ranking && !this.ranking.rows.length) this.renderMain();
          }
        })
        .catch(() => undefined);
      if (!Object.keys(readOwnHash()).length && !Object.keys(readParentHash()).length) {
        // A reload of TensorBoard itself: our keys live in its hash as p.stagnation.<key>.
        try {
          const data = await this.host.request<Record<string, string> | null>(
            "experimental.GetURLPluginData",
            { pluginName: PLUGIN },
            1000,
          );
          if (data && typeof data === "object" && Object.keys(data).length) {
            this.state = decodeState(data);
          }
        } catch {
          /* standalone or an old host: start from defaults */
        }
      }
    }
    this.syncControls();
    await this.load(false);
  }

  // ---------------------------------------------------------------- layout

  private buildSkeleton(): void {
    let typing = 0;
    this.tagInput.addEventListener("input", () => {
      window.clearTimeout(typing);
      typing = window.setTimeout(() => {
        this.state.tag = this.tagInput.value;
        this.onFiltersChanged();
      }, 120);
    });
    this.roleSelect.addEventListener("change", () => {
      this.state.role = this.roleSelect.value;
      this.onFiltersChanged();
    });
    this.ratioInput.addEventListener("change", () => {
      const v = Number(this.ratioInput.value);
      const next = this.ratioInput.value && Number.isFinite(v) && v > 0 && v <= 1 ? v : null;
      if (next === this.state.ratio) return;
      this.state.ratio = next === 0.01 ? null : next;
      writeState(this.state);
      this.seriesCache.clear();
      void this.load(true);
    });

    const header = h(
      "header",
      { class: "stg-card" },
      h(
        "div",
        { class: "stg-head" },
        h("h1", null, "Stagnation"),
        h("span", { class: "stg-sub" }, "Which layers are actually learning? Tags ranked by how much their histograms move from step to step."),
        this.updating,
      ),
      h(
        "p",
        { class: "stg-note" },
        h("b", null, "Histogram drift is a lower bound on movement: "),
        "updates of random sign and permutations of the weights barely change a histogram, so a static histogram is evidence, not proof, of a stuck layer. ",
        h("b", null, "source: exact "),
        "rows use the logged update ratio ‖ΔW‖/‖W‖ per step instead.",
      ),
      h(
        "div",
        { id: "stg-toolbar" },
        h(
          "div",
          { class: "stg-toolbar", style: "margin-top:10px" },
          h("div", { class: "stg-field" }, "Runs", this.runChips),
          h(
            "label",
            { class: "stg-field", title: "A tag is stagnant when its drift stays below this fraction of its run's typical parameter score" },
            "Stagnant below",
            this.ratioInput,
            "× the run's typical score",
          ),
        ),
        h(
          "div",
          { class: "stg-toolbar", style: "margin-top:8px" },
          h("label", { class: "stg-field" }, "Tag", this.tagInput, this.tagInvalid),
          h("label", { class: "stg-field" }, "Role", this.roleSelect),
          h("div", { class: "stg-field" }, "Status", this.statusChips),
        ),
      ),
    );
    this.tableWrap.append(h("table", { class: "stg-table" }, this.thead, this.tbody));
    this.tableCard.append(
      h(
        "div",
        { class: "stg-tablehead" },
        this.count,
        h("span", { class: "stg-count" }, "Click a row, or use ↑ ↓ and Enter, to see its distribution and drift rate. Column headers sort."),
      ),
      this.tableWrap,
    );
    this.tbody.addEventListener("keydown", (ev) => this.onTableKey(ev));
    this.root.append(header, this.main);
  }

  private syncControls(): void {
    this.tagInput.value = this.state.tag;
    this.ratioInput.value = String(this.state.ratio ?? this.ranking?.ratio ?? 0.01);
  }

  // ---------------------------------------------------------------- data

  private scheduleReload(): void {
    window.clearTimeout(this.reloadTimer);
    this.reloadTimer = window.setTimeout(() => void this.load(true), 300);
  }

  private async load(quiet: boolean): Promise<void> {
    if (this.loading) {
      this.reloadQueued = true;
      return;
    }
    this.loading = true;
    this.rankingAbort = new AbortController();
    const t0 = performance.now();
    let ticker = 0;
    if (!quiet || !this.ranking) {
      this.showLoading(t0);
      ticker = window.setInterval(() => this.showLoading(t0), 1000);
    } else {
      this.updating.textContent = "updating…";
    }
    try {
      const r = await fetchRanking(this.state.ratio, this.rankingAbort.signal);
      const before = this.selectedRow();
      this.ranking = r;
      this.seriesCache.clear();
      this.updating.textContent = "";
      this.syncControls();
      if (this.state.sel && !r.rows.some((row) => row.run === this.state.sel![0] && row.tag === this.state.sel![1])) {
        this.state.sel = null;
      }
      // A periodic reload that changed nothing about the selected tag keeps its charts.
      const after = this.selectedRow();
      const same =
        quiet &&
        !!before &&
        !!after &&
        before.last_step === after.last_step &&
        before.samples === after.samples &&
        before.status === after.status &&
        before.threshold === after.threshold &&
        before.score === after.score;
      this.renderMain(quiet, same);
    } catch (e) {
      if ((e as Error).name === "AbortError") return;
      if (quiet && this.ranking) {
        this.updating.textContent = `update failed: ${(e as Error).message}`;
      } else {
        this.showError(e as Error);
      }
    } finally {
      window.clearInterval(ticker);
      this.loading = false;
      if (this.reloadQueued) {
        this.reloadQueued = false;
        void this.load(true);
      }
    }
  }

  private showLoading(t0: number): void {
    const secs = Math.round((performance.now() - t0) / 1000);
    this.disposeCharts();
    clear(this.main);
    this.main.append(
      h(
        "section",
        { class: "stg-card stg-loading", role: "status", "aria-live": "polite" },
        h("div", null, `Reading histograms and measuring drift… ${secs > 0 ? secs + " s" : ""}`),
        h("div", { class: "stg-progress" }),
        secs >= 3
          ? h("div", null, "Large logs take a while: every kept histogram of every tag is compared with the previous one.")
          : null,
      ),
    );
  }

  private showError(e: Error): void {
    this.disposeCharts();
    clear(this.main);
    const status = e instanceof ApiError && e.status ? ` (HTTP ${e.status})` : "";
    this.main.append(
      h(
        "section",
        { class: "stg-card stg-error", role: "alert" },
        h("h2", null, `Could not load the ranking${status}`),
        h("pre", null, e.message),
        h("button", { class: "stg-btn", type: "button", onclick: () => void this.load(false) }, "Retry"),
      ),
    );
  }

  private showEmpty(): void {
    const runs = this.hostRuns;
    this.main.append(
      h(
        "section",
        { class: "stg-card stg-empty" },
        h("h2", null, "No histograms found"),
        h(
          "p",
          null,
          runs && runs.length
            ? `TensorBoard sees ${runs.length} run${runs.length === 1 ? "" : "s"}, but none has histogram summaries. `
            : "This log directory has no histogram summaries yet. ",
          "This tab measures how much each layer's weight histogram moves between logged steps, so log histograms of your parameters during training:",
        ),
        h("p", null, "TensorFlow 2 (custom loop):"),
        h("pre", null, 'with writer.as_default():\n    for v in model.trainable_variables:\n        tf.summary.histogram(v.name, v, step=step)'),
        h("p", null, "Keras:"),
        h("pre", null, "model.fit(..., callbacks=[tf.keras.callbacks.TensorBoard(log_dir, histogram_freq=1)])"),
        h("p", null, "PyTorch:"),
        h("pre", null, "from torch.utils.tensorboard import SummaryWriter\nwriter = SummaryWriter(log_dir)\nfor name, p in model.named_parameters():\n    writer.add_histogram(name, p, step)"),
        h("p", null, "Log every few hundred steps over the whole run; the tab updates when TensorBoard reloads."),
      ),
    );
  }

  // ---------------------------------------------------------------- filters

  private visibleRuns(): string[] {
    const r = this.ranking;
    if (!r) return [];
    return r.runs.filter((x) => !this.state.hidden.includes(x));
  }

  private tagRegex(): RegExp | null {
    this.regexError = null;
    if (!this.state.tag) return null;
    try {
      return new RegExp(this.state.tag, "i");
    } catch (e) {
      this.regexError = "invalid regex";
      return null;
    }
  }

  private roleMatches(role: string): boolean {
    const f = this.state.role;
    if (!f) return true;
    if (f === "params") return PARAM_ROLES.has(role);
    return role === f;
  }

  private filteredRows(ignoreStatus = false): Row[] {
    const r = this.ranking;
    if (!r) return [];
    const runs = new Set(this.visibleRuns());
    const re = this.tagRegex();
    const statuses = new Set(this.state.status);
    return r.rows.filter(
      (row) =>
        runs.has(row.run) &&
        (!re || re.test(row.tag)) &&
        this.roleMatches(row.role) &&
        (ignoreStatus || !statuses.size || statuses.has(row.status)),
    );
  }

  private sortRows(rows: Row[]): Row[] {
    const key = this.state.sort as SortKey;
    const sev = (s: string) => {
      const i = (STATUSES as readonly string[]).indexOf(s);
      return i < 0 ? STATUSES.length : i;
    };
    const cmp: Record<SortKey, (a: Row, b: Row) => number> = {
      rank: (a, b) => a.rank - b.rank,
      tag: (a, b) => a.layer.localeCompare(b.layer) || a.tag.localeCompare(b.tag),
      run: (a, b) => a.run.localeCompare(b.run),
      role: (a, b) => a.role.localeCompare(b.role),
      status: (a, b) => sev(a.status) - sev(b.status),
      score: (a, b) => cmpNum(a.score, b.score),
      net: (a, b) => cmpNum(a.net, b.net),
      last_step: (a, b) => cmpNum(a.last_step, b.last_step),
      source: (a, b) => a.source.localeCompare(b.source),
    };
    const f = cmp[key] ?? cmp.rank;
    const dir = this.state.desc ? -1 : 1;
    return [...rows].sort((a, b) => dir * f(a, b) || a.rank - b.rank);
  }

  private onFiltersChanged(): void {
    writeState(this.state);
    this.renderControls();
    this.renderTable();
    this.renderProfile();
  }

  // ---------------------------------------------------------------- rendering

  private renderMain(quiet = false, keepDetail = false): void {
    const r = this.ranking;
    keepDetail = keepDetail && this.shownSeries !== null && this.main.contains(this.detailCard);
    const scroll = this.tableWrap.scrollTop;
    const focused = this.tbody.contains(document.activeElement);
    const detailHeight = this.detailCard.offsetHeight;
    if (keepDetail) {
      this.profileChart?.dispose();
      this.profileChart = null;
      for (const sp of this.sparks) sp.destroy();
      this.sparks = [];
      this.sparkObserver?.disconnect();
    } else {
      this.disposeCharts();
    }
    clear(this.main);
    this.renderControls();
    if (!r) return;
    this.root.querySelector("#stg-toolbar")?.classList.toggle("stg-hidden", !r.rows.length);
    if (!r.rows.length) {
      this.showEmpty();
      return;
    }
    this.main.style.cssText = "display:flex;flex-direction:column;gap:12px";
    this.main.append(this.tableCard, this.detailCard, this.profileCard);
    this.renderHead();
    this.renderTable();
    if (quiet) {
      // Keep the user's place: table scroll, keyboard focus, page height while the series loads.
      this.tableWrap.scrollTop = scroll;
      if (focused) this.tbody.querySelector<HTMLElement>('tr[tabindex="0"]')?.focus({ preventScroll: true });
    }
    if (!keepDetail) {
      this.detailCard.style.minHeight = quiet && detailHeight ? `${detailHeight}px` : "";
      this.renderDetail();
    }
    this.renderProfile();
  }

  private renderControls(): void {
    const r = this.ranking;
    const runs = r?.runs ?? [];
    clear(this.runChips);
    for (const run of runs) {
      const on = !this.state.hidden.includes(run);
      this.runChips.append(
        h(
          "button",
          {
            class: "stg-chip",
            type: "button",
            "aria-pressed": on ? "true" : "false",
            title: run,
            onclick: () => {
              this.state.hidden = on ? [...this.state.hidden, run] : this.state.hidden.filter((x) => x !== run);
              this.onFiltersChanged();
            },
          },
          h("span", { class: "stg-swatch", style: `background:${runColour(run, runs)}` }),
          h("span", { class: "stg-label" }, run),
        ),
      );
    }
    if (this.state.hidden.length) {
      this.runChips.append(
        h(
          "button",
          {
            class: "stg-btn",
            type: "button",
            onclick: () => {
              this.state.hidden = [];
              this.onFiltersChanged();
            },
          },
          "show all",
        ),
      );
    }
    if (!runs.length) this.runChips.append(h("span", { class: "stg-count" }, "–"));

    // Roles present in the data, with counts.
    const base = r ? r.rows.filter((row) => !this.state.hidden.includes(row.run)) : [];
    const roleCounts = new Map<string, number>();
    for (const row of base) roleCounts.set(row.role, (roleCounts.get(row.role) ?? 0) + 1);
    clear(this.roleSelect);
    const paramCount = base.filter((row) => PARAM_ROLES.has(row.role)).length;
    this.roleSelect.append(h("option", { value: "" }, `all (${base.length})`));
    this.roleSelect.append(h("option", { value: "params" }, `parameters (${paramCount})`));
    const known = [...ROLES, ...[...roleCounts.keys()].filter((x) => !(ROLES as readonly string[]).includes(x))];
    for (const role of known) {
      const c = roleCounts.get(role) ?? 0;
      if (c || role === this.state.role) this.roleSelect.append(h("option", { value: role }, `${role} (${c})`));
    }
    this.roleSelect.value = this.state.role;

    // Status chips with counts under the other filters.
    clear(this.statusChips);
    const sCounts = new Map<string, number>();
    for (const row of this.filteredRows(true)) sCounts.set(row.status, (sCounts.get(row.status) ?? 0) + 1);
    for (const st of STATUSES) {
      const c = sCounts.get(st) ?? 0;
      const on = this.state.status.includes(st);
      const info = STATUS_INFO[st];
      this.statusChips.append(
        h(
          "button",
          {
            class: "stg-chip",
            type: "button",
            "aria-pressed": !this.state.status.length || on ? "true" : "false",
            title: info.help + (on ? " (click to show all statuses)" : " (click to show only this status)"),
            onclick: () => {
              this.state.status = on ? this.state.status.filter((x) => x !== st) : [...this.state.status, st];
              this.onFiltersChanged();
            },
          },
          h("span", { class: "stg-swatch", style: `background:${info.colour}` }),
          h("span", { class: "stg-label" }, `${st} ${c}`),
        ),
      );
    }
    this.tagInput.classList.toggle("stg-bad", false);
    this.tagRegex();
    this.tagInvalid.textContent = this.regexError ?? "";
    this.tagInput.classList.toggle("stg-bad", this.regexError !== null);
    this.tagInput.setAttribute("aria-invalid", this.regexError ? "true" : "false");
  }

  private renderHead(): void {
    clear(this.thead);
    const tr = h("tr");
    for (const c of COLUMNS) {
      const th = h("th", { class: c.num ? "num" : null, scope: "col", title: c.title ?? null });
      if (c.key) {
        const key = c.key;
        if (this.state.sort === key) th.setAttribute("aria-sort", this.state.desc ? "descending" : "ascending");
        th.append(
          h(
            "button",
            {
              type: "button",
              onclick: () => {
                if (this.state.sort === key) this.state.desc = !this.state.desc;
                else {
                  this.state.sort = key;
                  // Numbers read best largest first; names A→Z.
                  this.state.desc = key === "score" || key === "net" || key === "last_step";
                }
                writeState(this.state);
                this.renderHead();
                this.renderTable();
              },
            },
            c.label,
          ),
        );
      } else {
        th.append(h("span", { class: "stg-th" }, c.label));
      }
      tr.append(th);
    }
    this.thead.append(tr);
  }

  private scoreScale(): (v: number | null) => number {
    let lo = Infinity;
    let hi = -Infinity;
    for (const row of this.ranking?.rows ?? []) {
      const v = row.score;
      if (v !== null && Number.isFinite(v) && v > 0) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
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

  private renderTable(): void {
    for (const s of this.sparks) s.destroy();
    this.sparks = [];
    this.sparkObserver?.disconnect();
    clear(this.tbody);
    const r = this.ranking;
    if (!r) return;
    const rows = this.sortRows(this.filteredRows());
    this.visibleRows = rows;
    this.count.textContent = `${rows.length} of ${r.rows.length} tags`;
    this.count.style.fontWeight = "500";
    const runs = r.runs;
    const scale = this.scoreScale();
    const sel = this.state.sel;
    const pending = new Map<Element, Row>();
    this.sparkObserver = new IntersectionObserver(
      (entries) => {
        for (const e of entries) {
          if (!e.isIntersecting) continue;
          const row = pending.get(e.target);
          if (!row) continue;
          pending.delete(e.target);
          this.sparkObserver?.unobserve(e.target);
          if (row.sparkline.length) {
            this.sparks.push(sparkline(e.target as HTMLElement, row.sparkline, statusColour(row.status)));
          }
        }
      },
      { root: this.tableWrap, rootMargin: "200px" },
    );
    let focusable = false;
    rows.forEach((row, i) => {
      const selected = !!sel && sel[0] === row.run && sel[1] === row.tag;
      const info = STATUS_INFO[row.status] ?? STATUS_INFO.insufficient;
      const spark = h("div", { class: "stg-spark", title: "drift per step over the tag's history, oldest first" });
      const tr = h(
        "tr",
        {
          tabindex: selected || (!sel && i === 0) ? "0" : "-1",
          "aria-selected": selected ? "true" : "false",
          class: PARAM_ROLES.has(row.role) ? null : "stg-nonparam",
          "data-run": row.run,
          "data-tag": row.tag,
          "data-status": row.status,
          onclick: () => this.select(row, false),
        },
        h("td", { class: "num" }, String(row.rank)),
        h(
          "td",
          { title: row.tag },
          tagCell(row),
        ),
        h(
          "td",
          { title: row.run },
          h("span", { class: "stg-run" }, h("span", { class: "stg-swatch", style: `background:${runColour(row.run, runs)}` }), h("span", null, row.run)),
        ),
        h("td", null, row.role),
        h(
          "td",
          null,
          h("span", { class: "stg-badge", style: `background:${info.colour};color:${info.ink}`, title: info.help }, row.status),
        ),
        h(
          "td",
          { title: `score ${fmt(row.score, 4)} per step${row.threshold !== null ? `; stagnant threshold ${fmt(row.threshold)}` : ""}` },
          h(
            "div",
            { class: "stg-score" },
            h("div", { class: "stg-bar" }, h("div", { style: `width:${scale(row.score).toFixed(1)}%;background:${info.colour}` })),
            h("span", { class: "stg-score-val" }, fmtSci(row.score)),
          ),
        ),
        h("td", { class: "num" }, fmt(row.net)),
        h("td", null, spark),
        h("td", { class: "num" }, fmtStep(row.last_step)),
        h(
          "td",
          { title: row.source === "exact" ? "score from the logged update ratio ||ΔW||/||W|| per step" : "score from histogram drift (a lower bound on movement)" },
          h("span", { class: row.source === "exact" ? "stg-src-exact" : "stg-src" }, row.source),
        ),
      );
      if (tr.getAttribute("tabindex") === "0") focusable = true;
      pending.set(spark, row);
      this.sparkObserver!.observe(spark);
      this.tbody.append(tr);
    });
    if (!focusable && this.tbody.firstElementChild) this.tbody.firstElementChild.setAttribute("tabindex", "0");
    if (!rows.length) {
      this.tbody.append(
        h(
          "tr",
          null,
          h(
            "td",
            { colspan: String(COLUMNS.length), class: "stg-empty" },
            this.regexError ? "The tag filter is not a valid regular expression." : "No tags match the filters. ",
            h(
              "button",
              {
                class: "stg-btn",
                type: "button",
                onclick: () => {
                  this.state.tag = "";
                  this.state.role = "";
                  this.state.status = [];
                  this.state.hidden = [];
                  this.tagInput.value = "";
                  this.onFiltersChanged();
                },
              },
              "clear filters",
            ),
          ),
        ),
      );
    }
  }

  private rowElements(): HTMLTableRowElement[] {
    return Array.from(this.tbody.querySelectorAll<HTMLTableRowElement>("tr[data-run]"));
  }

  private onTableKey(ev: KeyboardEvent): void {
    const trs = this.rowElements();
    if (!trs.length) return;
    const cur = trs.indexOf(document.activeElement as HTMLTableRowElement);
    let next = -1;
    switch (ev.key) {
      case "ArrowDown":
        next = Math.min(trs.length - 1, cur + 1);
        break;
      case "ArrowUp":
        next = Math.max(0, cur < 0 ? 0 : cur - 1);
        break;
      case "Home":
        next = 0;
        break;
      case "End":
        next = trs.length - 1;
        break;
      case "PageDown":
        next = Math.min(trs.length - 1, Math.max(cur, 0) + 10);
        break;
      case "PageUp":
        next = Math.max(0, cur - 10);
        break;
      case "Enter":
      case " ":
        if (cur >= 0) {
          ev.preventDefault();
          this.select(this.visibleRows[cur], true);
        }
        return;
      default:
        return;
    }
    ev.preventDefault();
    if (next >= 0 && next !== cur) {
      this.select(this.visibleRows[next], true);
    }
  }

  private select(row: Row, focus: boolean): void {
    this.state.sel = [row.run, row.tag];
    writeState(this.state);
    for (const tr of this.rowElements()) {
      const on = tr.dataset.run === row.run && tr.dataset.tag === row.tag;
      tr.setAttribute("aria-selected", on ? "true" : "false");
      tr.setAttribute("tabindex", on ? "0" : "-1");
      if (on && focus) {
        tr.focus({ preventScroll: true });
        tr.scrollIntoView({ block: "nearest" });
      }
    }
    this.renderDetail();
    this.renderProfile();
  }

  private selectedRow(): Row | null {
    const sel = this.state.sel;
    if (!sel || !this.ranking) return null;
    return this.ranking.rows.find((r) => r.run === sel[0] && r.tag === sel[1]) ?? null;
  }

  private distributionsHref(tag: string): string {
    // The plugin document's base is <root>/data/plugin/stagnation/; TensorBoard's root is three levels up.
    const root = new URL("../../../", document.baseURI);
    root.hash = `distributions&tagFilter=${encodeURIComponent("^" + escapeRegExp(tag) + "$")}`;
    return root.href;
  }

  private renderDetail(): void {
    this.distChart?.dispose();
    this.rateChart?.dispose();
    this.distChart = this.rateChart = null;
    this.shownSeries = null;
    this.seriesAbort?.abort();
    clear(this.detailCard);
    const row = this.selectedRow();
    if (!row) {
      this.detailCard.style.minHeight = "";
      this.detailCard.append(
        h("div", { class: "stg-empty" }, "Select a row (click, or arrow keys and Enter) to see its distribution over steps and its drift rate."),
      );
      return;
    }
    const runs = this.ranking?.runs ?? [];
    const info = STATUS_INFO[row.status] ?? STATUS_INFO.insufficient;
    const since = h("span", { class: "stg-count" });
    this.detailCard.append(
      h(
        "div",
        { class: "stg-detail-head" },
        h("h2", null, row.layer && row.layer !== row.tag ? `${row.layer} · ${row.tag}` : row.tag),
        h("span", { class: "stg-run" }, h("span", { class: "stg-swatch", style: `background:${runColour(row.run, runs)}` }), h("span", null, row.run)),
        h("span", { class: "stg-badge", style: `background:${info.colour};color:${info.ink}`, title: info.help }, row.status),
        h("span", { class: "stg-count" }, `score ${fmt(row.score)} / step · ${row.role} · ${row.samples ?? "?"} samples · source ${row.source}`),
        since,
        h(
          "a",
          { href: this.distributionsHref(row.tag), target: "_top", title: "Open this tag in TensorBoard's Distributions tab" },
          "Open in Distributions ↗",
        ),
      ),
      h(
        "p",
        { class: "stg-note", style: "margin:0 0 8px" },
        row.source === "exact"
          ? "Score from the logged update ratio ||ΔW||/||W|| per step (exact); the histogram drift is a lower bound shown alongside."
          : "Score from histogram drift: a lower bound on movement (random-sign updates and permutations barely change a histogram).",
      ),
    );
    const distEl = h("div", { class: "stg-chart" });
    const rateEl = h("div", { class: "stg-chart" });
    const readout = h("p", { class: "stg-chart-cap" }, " ");
    const status = h("div", { class: "stg-loading" }, h("div", null, "Loading the tag's series…"), h("div", { class: "stg-progress" }));
    const charts = h(
      "div",
      { class: "stg-charts" },
      h("div", null, h("div", { class: "stg-chart-title" }, "Distribution over steps"), readout, distEl),
      h(
        "div",
        null,
        h("div", { class: "stg-chart-title" }, "Drift rate per step"),
        h("p", { class: "stg-chart-cap" }, "Normalised Wasserstein-1 between kept histograms ÷ step gap (log scale)."),
        rateEl,
      ),
    );
    charts.classList.add("stg-hidden");
    this.detailCard.append(status, charts);
    const key = rowKey(row.run, row.tag);
    const draw = (s: Series) => {
      status.remove();
      charts.classList.remove("stg-hidden");
      if (s.stagnant_since !== null) since.textContent = `stagnant since step ${fmtStep(s.stagnant_since)}`;
      this.distChart = new ChartBox(distEl, 230);
      this.rateChart = new ChartBox(rateEl, 230);
      this.shownSeries = { s, row };
      this.drawSeriesCharts(readout);
      this.detailCard.style.minHeight = "";
    };
    const cached = this.seriesCache.get(key);
    if (cached) {
      draw(cached);
      return;
    }
    const ctl = new AbortController();
    this.seriesAbort = ctl;
    fetchSeries(row.run, row.tag, this.state.ratio, ctl.signal)
      .then((s) => {
        this.seriesCache.set(key, s);
        if (ctl.signal.aborted) return;
        draw(s);
      })
      .catch((e: Error) => {
        if (e.name === "AbortError") return;
        this.detailCard.style.minHeight = "";
        status.replaceChildren(
          h("div", { class: "stg-invalid", role: "alert" }, `Could not load the series${e instanceof ApiError && e.status ? ` (HTTP ${e.status})` : ""}: ${e.message}`),
        );
      });
  }

  private drawSeriesCharts(readout?: HTMLElement): void {
    const shown = this.shownSeries;
    if (!shown || !this.distChart || !this.rateChart) return;
    const { s, row } = shown;
    const colour = runColour(row.run, this.ranking?.runs ?? []);
    const ro = readout ?? (this.detailCard.querySelector(".stg-charts .stg-chart-cap") as HTMLElement);
    const d = distributionOptions(s, colour, ro);
    this.distChart.set(d.opts, d.data);
    const threshold = s.threshold ?? row.threshold;
    const r = rateOptions(s, colour, threshold, row.floor);
    this.rateChart.set(r.opts, r.data);
  }

  private renderProfile(): void {
    this.profileChart?.dispose();
    this.profileChart = null;
    clear(this.profileCard);
    const r = this.ranking;
    if (!r || !r.layers.length) {
      this.profileCard.classList.add("stg-hidden");
      return;
    }
    this.profileCard.classList.remove("stg-hidden");
    const runs = this.visibleRuns()
      .map((run) => ({
        run,
        colour: runColour(run, r.runs),
        layers: r.layers.filter((l) => l.run === run).sort((a, b) => a.order - b.order),
      }))
      .filter((x) => x.layers.length);
    const el = h("div", { class: "stg-profile" });
    this.profileCard.append(
      h("div", { class: "stg-chart-title" }, "Drift versus depth"),
      h(
        "p",
        { class: "stg-chart-cap" },
        "One point per layer (its main parameter), in model order, one line per run; point colour = status. Stagnant early layers stand out on the left. Click a point to select it.",
      ),
      el,
      h(
        "div",
        { class: "stg-legend" },
        STATUSES.map((st) =>
          h("span", { title: STATUS_INFO[st].help }, h("span", { class: "stg-dot", style: `background:${STATUS_INFO[st].colour}` }), st),
        ),
      ),
    );
    if (!runs.length) {
      el.replaceChildren(h("div", { class: "stg-empty" }, "No run selected."));
      return;
    }
    const sel = this.state.sel ? { run: this.state.sel[0], tag: this.state.sel[1] } : null;
    const pick = (p: LayerPoint) => {
      const row = r.rows.find((x) => x.run === p.run && x.tag === p.tag);
      if (row) this.select(row, false);
    };
    const p = profileOptions(runs, sel, pick);
    this.profileChart = new ChartBox(el, 220);
    this.profileChart.set(p.opts, p.data);
  }

  private redrawCharts(): void {
    // Axis and grid colours come from the theme: rebuild the charts.
    if (!this.ranking || !this.ranking.rows.length) return;
    this.drawSeriesCharts();
    if (this.profileChart) this.renderProfile();
  }

  private disposeCharts(): void {
    this.distChart?.dispose();
    this.rateChart?.dispose();
    this.profileChart?.dispose();
    this.distChart = this.rateChart = this.profileChart = null;
    for (const s of this.sparks) s.destroy();
    this.sparks = [];
    this.sparkObserver?.disconnect();
  }
}

let started = false;

/** Called by TensorBoard's plugin_entry.html once the module is loaded. */
export function render(): void {
  if (started) return;
  started = true;
  void new App().start();
}
