// The view the user chose, as one value: what the URL keeps (url.ts writes it) and what,
// with the ranking, every view is a function of. Pure: the store tests run it in node.

export const SORT_KEYS = ["rank", "tag", "run", "role", "status", "score", "net", "last_step", "source"] as const;
export type SortKey = (typeof SORT_KEYS)[number];

/** Role filter values besides a single role. */
export const PARAMETERS = "params";
export const ALL_ROLES = "all";

export type Selection = readonly [run: string, tag: string];

export interface ViewState {
  /** Regular expression searched in tag names, case-insensitive; "" = every tag. */
  tag: string;
  /** PARAMETERS (the default), ALL_ROLES, or one role. */
  role: string;
  /** Statuses shown; empty = every status. */
  status: readonly string[];
  /** Runs the user switched off. */
  hidden: readonly string[];
  sel: Selection | null;
  sort: SortKey;
  desc: boolean;
  /** Stagnant threshold ratio; null = the server's default. */
  ratio: number | null;
}

export const DEFAULT_STATE: ViewState = {
  tag: "", role: PARAMETERS, status: [], hidden: [], sel: null, sort: "rank", desc: false, ratio: null,
};

/** The state as URL keys; a field at its default is left out. */
export function encodeState(s: ViewState): Record<string, string> {
  const out: Record<string, string> = {};
  if (s.tag) out.tag = s.tag;
  if (s.role !== PARAMETERS) out.role = s.role;
  if (s.status.length) out.status = s.status.join(",");
  if (s.hidden.length) out.hide = JSON.stringify(s.hidden);
  if (s.sel) out.sel = JSON.stringify(s.sel);
  if (s.sort !== "rank" || s.desc) out.sort = (s.desc ? "-" : "") + s.sort;
  if (s.ratio !== null) out.ratio = String(s.ratio);
  return out;
}

/** The state from URL keys; a missing or damaged key keeps its default. */
export function decodeState(d: Record<string, string>): ViewState {
  const s: ViewState = { ...DEFAULT_STATE };
  if (typeof d.tag === "string") s.tag = d.tag;
  if (d.role) s.role = d.role;
  if (d.status) s.status = d.status.split(",").filter(Boolean);
  const hidden = parseJson(d.hide);
  if (Array.isArray(hidden)) s.hidden = hidden.map(String);
  const sel = parseJson(d.sel);
  if (Array.isArray(sel) && sel.length === 2) s.sel = [String(sel[0]), String(sel[1])];
  if (d.sort) {
    const key = d.sort.replace(/^-/, "");
    if ((SORT_KEYS as readonly string[]).includes(key)) {
      s.sort = key as SortKey;
      s.desc = d.sort.startsWith("-");
    }
  }
  const r = Number(d.ratio);
  if (d.ratio && Number.isFinite(r) && r > 0 && r <= 1) s.ratio = r;
  return s;
}

function parseJson(text: string | undefined): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
