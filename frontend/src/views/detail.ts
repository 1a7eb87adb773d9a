// The selected tag: what it is, and its movement charted. Histogram rows get the
// distribution over steps and the drift rate (with the exact update ratio where logged);
// parameters with checkpoint data get the update ratio per checkpoint pair and the cosine
// between consecutive updates; a row has whichever of these its data allows.
import type { CheckpointSeries, Row, Series } from "../api";
import { cosineChart } from "../charts/cosine";
import { distributionChart, hasDistribution } from "../charts/distribution";
import { mountChart, type Chart } from "../charts/frame";
import { ratioChart, type RatioLine } from "../charts/ratio";
import { meaning, type Definitions } from "../definitions";
import { h, type Scope } from "../dom";
import { axisLabel, axisName, escapeRegExp, fmt, fmtStep } from "../format";
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
  card.append(head(row, load, p), h("p", { class: "stg-note stg-source-note" }, sourceNote(row, p.defs)));
  const body = h("div", { class: "stg-detail-body" });
  if (load.state === "loading") {
    body.append(h("div", { class: "stg-loading" }, h("div", null, "Loading the tag's series…"), h("div", { class: "stg-progress" })));
  } else if (load.state === "error") {
    body.append(h("div", { class: "stg-error-text", role: "alert" }, load.message));
  } else {
    const panels = chartPanels(row, load.series, runColour(row.run, p.runs), p.theme, scope);
    const thinned = thinnedNote(load.series, p.defs);
    if (thinned) body.append(thinned);
    body.append(panels.length ? h("div", { class: "stg-charts" }, panels) : h("div", { class: "stg-empty" }, "Nothing to chart: this tag has no usable samples."));
  }
  card.append(body);
  return card;
}

function head(row: Row, load: SeriesLoad, p: DetailProps): HTMLElement {
  const since = load.state === "ready" ? load.series.stagnant_since : null;
  return h(
    "div",
    { class: "stg-detail-head" },
    h("h2", null, row.layer && row.layer !== row.tag ? `${row.layer} · ${row.tag}` : row.tag),
    runLabel(row.run, runColour(row.run, p.runs)),
    statusBadge(row.status, p.defs),
    h("span", { class: "stg-count" }, `score ${fmt(row.score)} / ${axisName(row.axis)} · ${row.role} · ${row.samples ?? "?"} samples · source ${row.source}`),
    since !== null ? h("span", { class: "stg-count" }, `stagnant since step ${fmtStep(since)}`) : null,
    hasHistograms(row)
      ? h("a", { href: distributionsHref(row.tag), target: "_top", title: "Open this tag in TensorBoard's Distributions tab" }, "Open in Distributions ↗")
      : null,
  );
}

function sourceNote(row: Row, defs: Definitions): string {
  const what = meaning(defs.sources, row.source);
  const lowerBound = row.source !== "histogram" && row.histogram_score !== null ? " The histogram drift, a lower bound, is shown alongside." : "";
  return `Score from source ${row.source}${what ? ": " + what : ""}.${lowerBound}`;
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
    if (hasRates) lines.push({ label: "histogram drift rate", xs: s.steps, ys: s.rate, colour });
    if (exact) lines.push({ label: "exact update ratio", xs: exact.steps, ys: exact.update_ratio, colour: theme.accent, dashed: true });
    // The threshold of what the chart shows: the row's own, unless the row is scored by checkpoints.
    const threshold = row.source === "checkpoint" ? s.thresholds.histogram ?? null : s.threshold ?? row.threshold;
    const text =
      (hasRates ? "Normalised Wasserstein-1 between kept histograms ÷ step gap (log scale)." : "") +
      (exact ? " Dashed: the logged update ratio ||ΔW||/||W|| per step." : "");
    const chart = ratioChart(
      { xName: "step", xLabel: "step", yLabel: "per step (log)", lines, threshold, floor: hasRates ? row.floor : null, since: hasRates ? s.stagnant_since : null },
      theme,
    );
    panels.push(panel("rate", hasRates ? "Drift rate per step" : "Exact update ratio per step", caption(text), chart, scope));
  }
  const cp = s.checkpoint && s.checkpoint.steps.length ? s.checkpoint : null;
  if (cp) {
    // The row's own "stagnant since" is the checkpoints' when they score it.
    const since = row.source === "checkpoint" ? row.stagnant_since : null;
    panels.push(...checkpointPanels(cp, s.thresholds.checkpoint ?? null, since, colour, theme, scope));
  }
  return panels;
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
  const ratio = ratioChart({ xName, xLabel, yLabel: "update ratio (log)", lines: [line], threshold, since }, theme);
  return [
    panel(
      "checkpoint-ratio",
      "Update ratio per checkpoint pair",
      caption(`||W_b − W_a|| / ||W_a|| between consecutive checkpoints a and b, drawn at b (log scale), with the run's stagnant threshold for checkpoints.${order}`),
      ratio,
      scope,
    ),
    panel(
      "checkpoint-cosine",
      "Direction of consecutive updates",
      caption(`Cosine between consecutive updates: near 1 = steady drift one way, near 0 = a noise-dominated walk, negative = oscillation.${order}`),
      cosineChart(cp.steps, cp.cosine, xName, xLabel, colour, theme),
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
    h("code", null, defs.keep_all_flag),
    ".",
  );
}

function caption(text: string): HTMLElement {
  return h("p", { class: "stg-chart-cap" }, text);
}

function panel(name: string, title: string, cap: HTMLElement, chart: Chart, scope: Scope): HTMLElement {
  const el = h("div", { class: "stg-chart" });
  mountChart(el, CHART_HEIGHT, chart, scope);
  return h("div", { "data-chart": name }, h("div", { class: "stg-chart-title" }, title), cap, el);
}
