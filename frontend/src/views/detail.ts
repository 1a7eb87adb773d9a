// The selected tag: what it is, and its movement charted. Histogram rows get the
// distribution over steps and the drift rate (with the exact update ratio where logged);
// parameters with checkpoint data get the update ratio per checkpoint pair and the cosine
// between consecutive updates; a row has whichever of these its data allows.
import type { CheckpointSeries, Row, Series, Units } from "../api";
import { cosineChart } from "../charts/cosine";
import { distributionChart, hasDistribution } from "../charts/distribution";
import { mountChart, type Chart } from "../charts/frame";
import { ratioChart, type RatioLine, type Threshold } from "../charts/ratio";
import { unitPairsChart, unitsSortedChart, zeroShareChart } from "../charts/units";
import { meaning, type Definitions } from "../definitions";
import { h, type Scope } from "../dom";
import { axisLabel, axisName, fmt, fmtStep } from "../format";
import { unitRanges } from "../names";
import { runColour } from "../palette";
import type { Theme } from "../theme";
import { runLabel, statusBadge } from "./parts";

/** Where the selected row's series is: asked for, failed, or here. */
export type SeriesLoad = { state: "loading" } | { state: "error"; message: string } | { state: "ready"; series: Series };

export interface DetailProps {
  row: Row | null;
  load: SeriesLoad | null;
  runs: readonly string[];
  defs: Definitions;
  theme: Theme;
}

const CHART_HEIGHT = 230;

export function detailView(p: DetailProps, scope: Scope): HTMLElement {
  const card = h("section", { class: "stg-card", "aria-label": "Selected tag" });
  const { row, load } = p;
  if (!row || !load) {
    card.append(h("div", { class: "stg-empty" }, "Select a row (click, or arrow keys and Enter), or a finding, to see how it moves."));
    return card;
  }
  card.append(head(row, p), h("p", { class: "stg-note stg-source-note" }, sourceNote(row, p.defs)));
  // The newest step the drawn series reaches: tells a refreshed series from the one it replaces.
  const drawnTo = load.state === "ready" ? load.series.steps[load.series.steps.length - 1] : undefined;
  const body = h("div", { class: "stg-detail-body", "data-last-step": drawnTo });
  if (load.state === "loading") {
    body.append(h("div", { class: "stg-loading" }, h("div", null, "Loading the tag's series…"), h("div", { class: "stg-progress" })));
  } else if (load.state === "error") {
    body.append(h("div", { class: "stg-error-text", role: "alert" }, load.message));
  } else {
    const panels = chartPanels(row, load.series, runColour(row.run, p.runs), p.theme, scope);
    const thinned = thinnedNote(load.series, p.defs);
    if (thinned) body.append(thinned);
    if (load.series.units) body.append(deadList(load.series.units));
    body.append(panels.length ? h("div", { class: "stg-charts" }, panels) : h("div", { class: "stg-empty" }, "Nothing to chart: this tag has no usable samples."));
  }
  card.append(body);
  return card;
}

/**
 * Scroll the page so the detail's first row of charts (or, while its series loads, the place
 * the charts will take) is in view, the detail's header above it if there is room.
 */
export function scrollToCharts(el: HTMLElement): void {
  const panels = Array.from(el.querySelectorAll<HTMLElement>(".stg-charts > [data-chart]"));
  const firstRow = panels.filter((panel) => panel.offsetTop === panels[0].offsetTop);
  const shown = firstRow.length ? firstRow : Array.from(el.querySelectorAll<HTMLElement>(".stg-detail-body"));
  if (!shown.length) return;
  const boxes = shown.map((e) => e.getBoundingClientRect());
  const top = Math.min(...boxes.map((b) => b.top));
  const bottom = Math.max(...boxes.map((b) => b.bottom));
  if (bottom > window.innerHeight) window.scrollBy(0, Math.min(bottom - window.innerHeight, top));
  else if (top < 0) window.scrollBy(0, top);
}

function head(row: Row, p: DetailProps): HTMLElement {
  const since = stagnantSince(row);
  return h(
    "div",
    { class: "stg-detail-head" },
    h("h2", null, row.layer && row.layer !== row.tag ? `${row.layer} · ${row.tag}` : row.tag),
    runLabel(row.run, runColour(row.run, p.runs)),
    statusBadge(row.status, p.defs),
    h("span", { class: "stg-count" }, `score ${fmt(row.score)} / ${axisName(row.axis)} · ${row.role} · ${row.samples ?? "?"} samples · source ${row.source}`),
    since !== null ? h("span", { class: "stg-count stg-since" }, `stagnant since ${axisName(row.axis)} ${fmtStep(since)}`) : null,
    hasHistograms(row)
      ? h("a", { href: distributionsHref(row.tag), target: "_top", title: "Open this tag in TensorBoard's Distributions tab" }, "Open in Distributions ↗")
      : null,
  );
}

/**
 * From which step the row stays below its threshold: the row's own figure, measured on the
 * source that scored it. Not for a frozen row, which never moved at all: its badge says more.
 */
function stagnantSince(row: Row): number | null {
  return row.status === "frozen" ? null : row.stagnant_since;
}

/** Which measurement scored the row, and the threshold it was held against. */
function sourceNote(row: Row, defs: Definitions): string {
  const what = meaning(defs.sources, row.source);
  const against = row.threshold !== null ? `, against ${fmt(row.threshold)}, the run's stagnant threshold for source ${row.source}` : "";
  const scored = `Scored by source ${row.source}${what ? ` (${what})` : ""}: ${fmt(row.score)} per ${axisName(row.axis)}${against}.`;
  if (row.source === "histogram") {
    return `${scored} Updates of random sign barely change a histogram: a still one is evidence, not proof, of a stuck layer.`;
  }
  return row.histogram_score !== null ? `${scored} The histogram drift, a lower bound, is shown alongside.` : scored;
}

function hasHistograms(row: Row): boolean {
  return row.source === "histogram" || row.histogram_score !== null;
}

/** TensorBoard's Distributions tab filtered to exactly this tag. */
function distributionsHref(tag: string): string {
  // The plugin document's base is <root>/data/plugin/stagnation/: TensorBoard's root is three levels up.
  const root = new URL("../../../", document.baseURI);
  root.hash = `distributions&tagFilter=${encodeURIComponent("^" + escapeRegExp(tag) + "$")}`;
  return root.href;
}

/** `s` escaped to match itself literally, in TensorBoard's tag filter (a JavaScript regex). */
function escapeRegExp(s: string): string {
  // Only the syntax characters: valid with and without the `u` flag.
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function chartPanels(row: Row, s: Series, colour: string, theme: Theme, scope: Scope): HTMLElement[] {
  const panels: HTMLElement[] = [];
  if (hasDistribution(s)) {
    const readout = caption(" ");
    panels.push(panel("distribution", "Distribution over steps", readout, distributionChart(s, colour, readout, theme), scope));
  }
  const hasRates = s.rate.some((v) => v !== null);
  const exact = s.exact && s.exact.steps.length ? s.exact : null;
  if (hasRates || exact) {
    const lines: RatioLine[] = [];
    const thresholds: Threshold[] = [];
    if (hasRates) {
      lines.push({ label: "histogram drift rate", xs: s.steps, ys: s.rate, colour });
      thresholds.push({ source: "histogram", value: s.thresholds.histogram ?? null });
    }
    if (exact) {
      lines.push({ label: "exact update ratio", xs: exact.steps, ys: exact.update_ratio, colour: theme.accent, dashed: true });
      thresholds.push({ source: "exact", value: s.thresholds.exact ?? null, dashed: true });
    }
    const scored = (row.source === "histogram" && hasRates) || (row.source === "exact" && !!exact);
    const text =
      (hasRates ? "Normalised Wasserstein-1 between kept histograms ÷ step gap (log scale)." : "") +
      (exact ? " Dashed: the logged update ratio ||ΔW||/||W|| per step." : "") +
      (thresholds.length > 1 ? " Red: each source's stagnant threshold for this run." : " Red: the run's stagnant threshold for it.");
    const chart = ratioChart(
      { xName: "step", xLabel: "step", yLabel: "per step (log)", lines, thresholds, floor: hasRates ? row.floor : null, since: scored ? stagnantSince(row) : null },
      theme,
    );
    const title = !exact ? "Drift rate per step" : hasRates ? "Drift rate and exact update ratio per step" : "Exact update ratio per step";
    panels.push(panel("rate", title, caption(text), chart, scope));
  }
  // Exact zeros say something of an activation (a ReLU's dead share), not of a weight.
  const zeros = row.role === "activation" && s.zero_share && s.zero_share.some((v) => v !== null) ? s.zero_share : null;
  if (zeros) {
    const threshold = s.thresholds.zero_share ?? null;
    const text = "Share of the activation's values that are exactly 0 at each step, from its histogram's bucket ending at 0." +
      (threshold !== null ? ` Red: the dying_relu finding's threshold (${fmt(100 * threshold)}%), reached and kept.` : "");
    panels.push(panel("zero-share", "Exact zeros per step", caption(text), zeroShareChart(s.steps, zeros, threshold, colour, theme), scope));
  }
  const cp = s.checkpoint && s.checkpoint.steps.length ? s.checkpoint : null;
  if (cp) {
    const since = row.source === "checkpoint" ? stagnantSince(row) : null;
    panels.push(...checkpointPanels(cp, s.thresholds.checkpoint ?? null, since, colour, theme, scope));
  }
  if (s.units) panels.push(...unitPanels(s.units, cp?.axis ?? row.axis, colour, theme, scope));
  return panels;
}

/** The per-unit view: units sorted by movement against the dead line, and the spread of units per checkpoint pair. */
function unitPanels(u: Units, xAxis: string, colour: string, theme: Theme, scope: Scope): HTMLElement[] {
  const panels: HTMLElement[] = [];
  if (u.sorted.movement.length) {
    const sampled = u.count > u.sorted.movement.length ? ` ${u.sorted.movement.length} of the ${u.count} are drawn, the dead among them.` : "";
    const text = `How far each ${u.noun} moved over the series, least moving first; red: dead ${u.noun}s, below the dashed line (1/100 of the median ${u.noun}'s movement).${sampled} Hover for the ${u.noun}'s index.`;
    panels.push(panel("units-sorted", `${capital(u.noun)}s by movement`, caption(text), unitsSortedChart(u, u.noun, colour, theme), scope));
  }
  if (u.pairs.steps.length) {
    const text = `The ${u.noun}s' movement between consecutive checkpoints, drawn at the later one: median, p10-p90 and min-max bands (log scale). A min at 0 throughout: some ${u.noun}s never move.`;
    panels.push(panel("units-pairs", `${capital(u.noun)}s per checkpoint pair`, caption(text), unitPairsChart(u, axisName(xAxis), axisLabel(xAxis), colour, theme), scope));
  }
  return panels;
}

/** The dead units, listed as ranges ("0-3, 200-255"), or that there are none. */
function deadList(u: Units): HTMLElement {
  const text = u.dead.length
    ? `Dead ${u.noun}s: ${u.dead.length} of ${u.count} (${unitRanges(u.dead, 40)}) never moved, or moved less than 1/100 of the median ${u.noun}.`
    : `No dead ${u.noun}s: all ${u.count} moved.`;
  return h("p", { class: "stg-note stg-dead-units", "data-dead": String(u.dead.length) }, text);
}

function capital(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function checkpointPanels(
  cp: CheckpointSeries,
  threshold: number | null,
  since: number | null,
  colour: string,
  theme: Theme,
  scope: Scope,
): HTMLElement[] {
  const [xName, xLabel] = [axisName(cp.axis), axisLabel(cp.axis)];
  const order = cp.axis === "checkpoint" ? " The x axis is the checkpoints' save order: their real steps are unknown." : "";
  const line = { label: "update ratio", xs: cp.steps, ys: cp.update_ratio, colour };
  const moved = cp.update_ratio.some((v) => v !== null && Number.isFinite(v) && v > 0);
  const ratio = ratioChart({ xName, xLabel, yLabel: "update ratio (log)", lines: [line], thresholds: [{ source: "checkpoint", value: threshold }], since }, theme);
  return [
    panel(
      "checkpoint-ratio",
      "Update ratio per checkpoint pair",
      caption(`||W_b − W_a|| / ||W_a|| between consecutive checkpoints a and b, drawn at b (log scale). Red: the run's stagnant threshold for checkpoints.${order}`),
      ratio,
      scope,
    ),
    panel(
      "checkpoint-cosine",
      "Direction of consecutive updates",
      caption(`Cosine between consecutive updates: near 1 = steady drift one way, near 0 = a noise-dominated walk, negative = oscillation.${order}`),
      moved ? cosineChart(cp.steps, cp.cosine, xName, xLabel, colour, theme) : "No updates: the tensor is the same in every checkpoint, so there is no direction to compare.",
      scope,
    ),
  ];
}

/** One line when TensorBoard kept fewer of this tensor's exact records than were written. */
function thinnedNote(s: Series, defs: Definitions): HTMLElement | null {
  const parts = [
    s.exact?.thinned && `${s.exact.thinned.kept} of ${s.exact.thinned.written} logged`,
    s.checkpoint?.thinned && `${s.checkpoint.thinned.kept} of ${s.checkpoint.thinned.written} checkpoint`,
  ].filter(Boolean);
  if (!parts.length) return null;
  return h(
    "p",
    { class: "stg-note stg-thinned-note" },
    `TensorBoard kept ${parts.join(" and ")} records of this tensor; the charts and the score use those. To keep them all, start it with `,
    h("code", { style: "white-space: nowrap" }, defs.keep_all_flag),
    ".",
  );
}

function caption(text: string): HTMLElement {
  return h("p", { class: "stg-chart-cap" }, text);
}

/** A titled chart, or in its place a sentence saying why there is nothing to draw. */
function panel(name: string, title: string, cap: HTMLElement, chart: Chart | string, scope: Scope): HTMLElement {
  let body: HTMLElement;
  if (typeof chart === "string") {
    body = h("div", { class: "stg-empty" }, chart);
  } else {
    body = h("div", { class: "stg-chart" });
    mountChart(body, CHART_HEIGHT, chart, scope);
  }
  return h("div", { "data-chart": name }, h("div", { class: "stg-chart-title" }, title), cap, body);
}
