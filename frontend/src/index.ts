// The Stagnation tab: which layers are actually learning?
// Entry point loaded by TensorBoard's data/plugin_entry.html: `import("./index.js").then(m => m.render())`.
// Here: bootstrap, TensorBoard's host messages, and the guard that keeps a slow, older
// answer from overwriting a newer one. Everything else is App (app.ts).
import uplotCss from "uplot/dist/uPlot.min.css";
import { fetchRanking, fetchSeries } from "./api";
import { App } from "./app";
import { h } from "./dom";
import { HostClient } from "./host";
import { CSS } from "./style";
import { applyTheme, watchTheme } from "./theme";
import { PLUGIN, savedState } from "./url";
import { decodeState, DEFAULT_STATE, type ViewState } from "./viewstate";

const RELOAD_MS = 300; // host broadcasts come in bursts (RunsChanged, DataReloaded): one fetch

let started = false;

/** Called by TensorBoard's plugin_entry.html once the module is loaded. */
export function render(): void {
  if (started) return;
  started = true;
  void start();
}

async function start(): Promise<void> {
  document.head.append(h("style", null, uplotCss + "\n" + CSS));
  if (!document.querySelector('meta[name="viewport"]')) {
    document.head.append(h("meta", { name: "viewport", content: "width=device-width, initial-scale=1" }));
  }
  if (!document.title) document.title = "Stagnation";
  const root = h("div", { id: "stg-app" });
  document.body.append(root);

  const host = new HostClient();
  const connected = host.connect();
  const state = savedState() ?? (connected ? await hostState(host) : null) ?? DEFAULT_STATE;
  const dark = watchTheme((d) => app.setTheme(applyTheme(d)));
  const app = new App(root, state, { ranking: latestOnly(fetchRanking), series: latestOnly(fetchSeries) }, applyTheme(dark));
  if (connected) listen(host, root, app);
  app.start();
}

/**
 * `fetcher` made latest-only: each call aborts the one before it, and what a superseded call
 * answers (or fails with) is dropped: its promise never settles. So an older response can
 * never overwrite a newer one, however the two race.
 */
function latestOnly<A extends unknown[], T>(
  fetcher: (signal: AbortSignal, ...args: A) => Promise<T>,
): (...args: A) => Promise<T> {
  let latest: AbortController | null = null;
  return (...args: A) => {
    latest?.abort();
    const mine = (latest = new AbortController());
    return new Promise<T>((resolve, reject) => {
      fetcher(mine.signal, ...args).then(
        (v) => latest === mine && resolve(v),
        (e) => latest === mine && reject(e),
      );
    });
  };
}

/** The state TensorBoard kept for a reload of the whole page (p.stagnation.<key>), if any. */
async function hostState(host: HostClient): Promise<ViewState | null> {
  try {
    const data = await host.request<Record<string, string> | null>("experimental.GetURLPluginData", { pluginName: PLUGIN }, 1000);
    return data && typeof data === "object" && Object.keys(data).length ? decodeState(data) : null;
  } catch {
    return null; // an old host: start from defaults
  }
}

/** TensorBoard's broadcasts reload the ranking; its run list feeds the empty state. */
function listen(host: HostClient, root: HTMLElement, app: App): void {
  root.dataset.host = "tensorboard";
  let timer = 0;
  const reload = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => app.reload(), RELOAD_MS);
    return null;
  };
  const runs = (payload: unknown) => {
    if (!Array.isArray(payload)) return;
    root.dataset.hostRuns = String(payload.length); // visible to tests and curious users
    app.setHostRuns(payload.map(String));
  };
  host.listen("experimental.RunsChanged", (payload) => {
    runs(payload);
    return reload();
  });
  host.listen("experimental.DataReloaded", () => {
    root.dataset.reloads = String(Number(root.dataset.reloads ?? 0) + 1);
    return reload();
  });
  // The first broadcast can come before we listen: ask.
  host.request<unknown>("experimental.GetRuns", null, 5000).then(runs, () => undefined);
}
