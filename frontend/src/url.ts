// Where the view state lives between page loads. Written to the iframe's own location
// (history.replaceState) and, while TensorBoard shows this tab, to TensorBoard's hash as
// `p.stagnation.<key>`, which survives a reload of the whole page.
import { decodeState, encodeState, type ViewState } from "./viewstate";

export const PLUGIN = "stagnation";
const PREFIX = `p.${PLUGIN}.`;

/** The saved state: the iframe's own hash, else TensorBoard's, else null (none saved). */
export function savedState(): ViewState | null {
  const own = readOwnHash();
  if (Object.keys(own).length) return decodeState(own);
  const parent = readParentHash();
  return Object.keys(parent).length ? decodeState(parent) : null;
}

function readOwnHash(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(window.location.hash.replace(/^#/, ""))) out[k] = v;
  return out;
}

/**
 * Our keys from TensorBoard's own hash (same origin). Read directly: TensorBoard 2.21
 * answers experimental.GetURLPluginData with an empty object, because its tf_storage hash
 * dictionary is not fed from the real URL in the Angular app.
 */
function readParentHash(): Record<string, string> {
  const out: Record<string, string> = {};
  const hash = parentLocation()?.hash.replace(/^#/, "") ?? "";
  for (const part of hash ? hash.split("&") : []) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const key = decode(part.slice(0, eq));
    if (key.startsWith(PREFIX)) out[key.slice(PREFIX.length)] = decode(part.slice(eq + 1));
  }
  return out;
}

export function writeState(s: ViewState): void {
  const enc = encodeState(s);
  try {
    const url = new URL(window.location.href);
    url.hash = new URLSearchParams(enc).toString();
    if (url.href !== window.location.href) history.replaceState(history.state, "", url.href);
  } catch {
    /* sandboxed documents may refuse; the view still works */
  }
  writeParentHash(enc);
}

/**
 * Mirror the state into TensorBoard's hash in its own format (`<tab>&key=value&...`, values
 * URI-encoded). Only while our tab is the active one, and without firing hashchange, so
 * TensorBoard's router is undisturbed.
 */
function writeParentHash(enc: Record<string, string>): void {
  const loc = parentLocation();
  if (!loc) return;
  const raw = loc.hash.replace(/^#/, "");
  const parts = raw ? raw.split("&") : [];
  if (parts[0] !== PLUGIN) return;
  const kept = parts.slice(1).filter((part) => !decode(part.split("=")[0]).startsWith(PREFIX));
  const ours = Object.keys(enc)
    .sort()
    .map((k) => encodeURIComponent(PREFIX + k) + "=" + encodeURIComponent(enc[k]));
  const next = [parts[0], ...kept, ...ours].join("&");
  if (next === raw) return;
  try {
    const url = new URL(loc.href);
    url.hash = next;
    window.parent.history.replaceState(window.parent.history.state, "", url.href);
  } catch {
    /* a locked-down parent: the iframe's hash still holds the state */
  }
}

/** TensorBoard's location, or null standalone or under a cross-origin parent. */
function parentLocation(): Location | null {
  try {
    const p = window.parent;
    if (!p || p === window) return null;
    void p.location.href; // throws here, not later, for a cross-origin parent
    return p.location;
  } catch {
    return null;
  }
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // a malformed escape: compare it as it is
  }
}
