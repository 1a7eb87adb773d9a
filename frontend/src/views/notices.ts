// What the tab shows instead of a ranking (loading, an error, or no data at all), or above
// it: that TensorBoard kept only part of the plugin's own records.
import { httpStatus, type Thinned } from "../api";
import { h, type Scope } from "../dom";

export type NoticeProps =
  | { kind: "loading"; since: number }
  | { kind: "error"; error: Error; retry: () => void }
  | { kind: "empty"; hostRuns: readonly string[] | null }
  | { kind: "thinned"; runs: Readonly<Record<string, Thinned>>; flag: string };

export function noticeView(p: NoticeProps, scope: Scope): HTMLElement {
  if (p.kind === "loading") return loading(p.since, scope);
  if (p.kind === "error") return error(p.error, p.retry);
  if (p.kind === "thinned") return thinned(p.runs, p.flag);
  return empty(p.hostRuns);
}

/**
 * Said once, above the table: TensorBoard's reservoirs kept fewer of the exact-movement
 * records than were written (the Python loader keeps 10 a tag unless told otherwise), so
 * every figure comes from a sample; the flag that keeps them all.
 */
function thinned(runs: Readonly<Record<string, Thinned>>, flag: string): HTMLElement {
  const entries = Object.entries(runs);
  const total = (key: "kept" | "written" | "series") => entries.reduce((n, [, t]) => n + (t[key] ?? 0), 0);
  const series = total("series");
  const where = entries.length === 1 ? `run ${entries[0][0]}` : `${entries.length} runs`;
  const perRun = entries.length > 1 ? ` (${entries.map(([run, t]) => `${run}: ${t.kept} of ${t.written}`).join("; ")})` : "";
  return h(
    "section",
    { class: "stg-card stg-thinned", role: "note" },
    h("p", { class: "stg-note" },
      h("b", null, "TensorBoard kept only part of the exact movement: "),
      `${total("kept")} of ${total("written")} records written${series ? ` for ${series} tensor${series === 1 ? "" : "s"}` : ""} in ${where}${perRun}. `,
      "Scores, statuses and findings come from the records it kept. To keep them all, start TensorBoard with ",
      h("code", { style: "white-space: nowrap" }, flag),
      ".",
    ),
  );
}

/** Counts the seconds itself: a slow first ranking should look alive, not stuck. */
function loading(since: number, scope: Scope): HTMLElement {
  const text = h("div");
  const hint = h("div");
  const tick = () => {
    const secs = Math.round((performance.now() - since) / 1000);
    text.textContent = `Reading the logs and measuring movement… ${secs > 0 ? secs + " s" : ""}`;
    hint.textContent = secs >= 3 ? "Large logs take a while: every kept histogram of every tag is compared with the previous one." : "";
  };
  tick();
  const timer = window.setInterval(tick, 1000);
  scope.add(() => window.clearInterval(timer));
  return h("section", { class: "stg-card stg-loading", role: "status", "aria-live": "polite" }, text, h("div", { class: "stg-progress" }), hint);
}

function error(e: Error, retry: () => void): HTMLElement {
  return h(
    "section",
    { class: "stg-card stg-error", role: "alert" },
    h("h2", null, `Could not load the ranking${httpStatus(e)}`),
    h("pre", null, e.message),
    h("button", { class: "stg-btn", type: "button", onclick: retry }, "Retry"),
  );
}

function empty(hostRuns: readonly string[] | null): HTMLElement {
  const n = hostRuns?.length ?? 0;
  return h(
    "section",
    { class: "stg-card stg-empty" },
    h("h2", null, "No histograms found"),
    h(
      "p",
      null,
      n ? `TensorBoard sees ${n} run${n === 1 ? "" : "s"}, but none has histogram summaries. ` : "This log directory has no histogram summaries yet. ",
      "This tab measures how much each layer's weight histogram moves between logged steps, so log histograms of your parameters during training:",
    ),
    h("p", null, "TensorFlow 2 (custom loop):"),
    h("pre", null, "with writer.as_default():\n    for v in model.trainable_variables:\n        tf.summary.histogram(v.name, v, step=step)"),
    h("p", null, "Keras:"),
    h("pre", null, "model.fit(..., callbacks=[tf.keras.callbacks.TensorBoard(log_dir, histogram_freq=1)])"),
    h("p", null, "PyTorch:"),
    h("pre", null, "from torch.utils.tensorboard import SummaryWriter\nwriter = SummaryWriter(log_dir)\nfor name, p in model.named_parameters():\n    writer.add_histogram(name, p, step)"),
    h("p", null, "Log every few hundred steps over the whole run; the tab updates when TensorBoard reloads."),
    h("p", null, "Saved checkpoints instead? This measures their movement into the run's logs:"),
    h("pre", null, "tb-stagnation checkpoints SRC"),
  );
}
