// View state kept in the URL so a reload keeps the view. Written to the iframe's own
// location (history.replaceState) and, when the parent is TensorBoard on this tab, to the
// parent's hash as `p.stagnation.<key>` keys, which TensorBoard hands back through
// experimental.GetURLPluginData after a reload of the whole page.

export const PLUGIN = "stagnation";

export interface ViewState {
  tag: string;
  role: string; // "" = all, "params" = parameters only, else one role
  status: string[]; // empty = all
  hidden: string[]; // runs the user switched off
  sel: [string, string] | null; // [run, tag]
  sort: string;
  desc: boolean;
  ratio: number | null;
}

export function defaultState(): ViewState {
  return { tag: "", role: "", status: [], hidden: [], sel: null, sort: "rank", desc: false, ratio: null };
}

export function encodeState(s: ViewState): Record<string, string> {
  const out: Record<string, string> = {};
  if (s.tag) out.tag = s.tag;
  if (s.role) out.role = s.role;
  if (s.status.length) out.status = s.status.join(",");
  if (s.hidden.length) out.hide = JSON.stringify(s.hidden);
  if (s.sel) out.sel = JSON.stringify(s.sel);
  if (s.sort !== "rank" || s.desc) out.sort = (s.desc ? "-" : "") + s.sort;
  if (s.ratio !== null) out.ratio = String(s.ratio);
  return out;
}

export function decodeState(d: Record<string, string>): ViewState {
  const s = defaultState();
  if (typeof d.tag === "string") s.tag = d.tag;
  if (typeof d.role === "string") s.role = d.role;
  if (typeof d.status === "string" && d.status) s.status = d.status.split(",").filter(Boolean);
  try {
    const h = JSON.parse(d.hide ?? "[]");
    if (Array.isArray(h)) s.hidden = h.map(String);
  } catch {
    /* ignore a damaged key */
  }
  try {
    const sel = JSON.parse(d.sel ?? "null");
    if (Array.isArray(sel) && sel.length === 2) s.sel = [String(sel[0]), String(sel[1])];
  } catch {
    /* ignore */
  }
  if (typeof d.sort === "string" && d.sort) {
    s.desc = d.sort.startsWith("-");
    s.sort = d.sort.replace(/^-/, "");
  }
  const r = Number(d.ratio);
  if (d.ratio && Number.isFinite(r) && r > 0) s.ratio = r;
  return s;
}

/**
 * Our `p.stagnation.<key>` keys from TensorBoard's own hash (same origin). Read directly:
 * TensorBoard 2.21 answers experimental.GetURLPluginData with an empty object, because
 * its tf_storage hash dictionary is not fed from the real URL in the Angular app.
 */
export function readParentHash(): Record<string, string> {
  const out: Record<string, string> = {};
  try {
    const p = window.parent;
    if (!p || p === window) return out;
    const prefix = `p.${PLUGIN}.`;
    for (const part of p.location.hash.replace(/^#/, "").split("&")) {
      const eq = part.indexOf("=");
      if (eq < 0) continue;
      try {
        const k = decodeURIComponent(part.slice(0, eq));
        if (k.startsWith(prefix)) out[k.slice(prefix.length)] = decodeURIComponent(part.slice(eq + 1));
      } catch {
        /* a malformed key: skip it */
      }
    }
  } catch {
    /* cross-origin parent */
  }
  return out;
}

/** State from the iframe's own URL hash (empty object when none). */
export function readOwnHash(): Record<string, string> {
  const out: Record<string, string> = {};
  const hash = window.location.hash.replace(/^#/, "");
  if (!hash) return out;
  for (const [k, v] of new URLSearchParams(hash)) out[k] = v;
  return out;
}

export function writeState(s: ViewState): void {
  const enc = encodeState(s);
  const own = new URLSearchParams(enc).toString();
  try {
    const url = new URL(window.location.href);
    url.hash = own;
    if (url.href !== window.location.href) history.replaceState(history.state, "", url.href);
  } catch {
    /* sandboxed documents may refuse; the view still works */
  }
  writeParentHash(enc);
}

/**
 * Mirror the state into TensorBoard's own hash (same origin) as p.stagnation.<key>, in
 * TensorBoard's hash format: `<tab>&key=value&...`, values URI-encoded. Only while our tab
 * is the active one, and without firing hashchange, so TensorBoard's router is undisturbed.
 */
function writeParentHash(enc: Record<string, string>): void {
  try {
    const p = window.parent;
    if (!p || p === window) return;
    const raw = p.location.hash.replace(/^#/, "");
    const parts = raw ? raw.split("&") : [];
    if (!parts.length || parts[0].includes("=") || parts[0] !== PLUGIN) return;
    const prefix = `p.${PLUGIN}.`;
    const kept = parts.slice(1).filter((part) => {
      const k = part.split("=")[0];
      let key = k;
      try {
        key = decodeURIComponent(k);
      } catch {
        /* keep as is */
      }
      return !key.startsWith(prefix);
    });
    const ours = Object.keys(enc)
      .sort()
      .map((k) => encodeURIComponent(prefix + k) + "=" + encodeURIComponent(enc[k]));
    const next = [parts[0], ...kept, ...ours].join("&");
    if (next === raw) return;
    const url = new URL(p.location.href);
    url.hash = next;
    p.history.replaceState(p.history.state, "", url.href);
  } catch {
    /* cross-origin or locked-down parent: the iframe hash still holds the state */
  }
}
