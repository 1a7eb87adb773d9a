// The ranking's vocabulary: statuses, roles, sources and finding kinds with what they mean.
// The server sends it as `definitions`, the same table the CLI prints from, so the tab keeps
// no copy of a meaning; FALLBACK stands in, field by field, only where an answer lacks one.

export interface Term {
  name: string;
  meaning: string;
}

export interface Definitions {
  /** In the server's order, which is also the order the tab lists and sorts them in. */
  statuses: Term[];
  roles: Term[];
  sources: Term[];
  finding_kinds: Term[];
  /** Roles whose stillness means a layer does not learn: what the role filter starts on. */
  parameter_roles: string[];
  default_ratio: number;
  /** What it means that TensorBoard kept fewer of the plugin's records than were written. */
  thinned: string;
  /** The TensorBoard flag that keeps every record of the plugin. */
  keep_all_flag: string;
}

/** Names only: what a term means has one source, the server. */
export const FALLBACK: Definitions = {
  statuses: terms("frozen", "stagnant", "moving", "nonfinite", "unresolved", "insufficient"),
  roles: terms("weight", "bias", "norm_scale", "norm_offset", "moving_stat", "gradient", "activation", "other"),
  sources: terms("exact", "checkpoint", "histogram"),
  finding_kinds: [],
  parameter_roles: ["weight", "bias", "norm_scale", "norm_offset", "moving_stat"],
  default_ratio: 0.01,
  thinned: "",
  keep_all_flag: "--samples_per_plugin stagnation=0",
};

function terms(...names: string[]): Term[] {
  return names.map((name) => ({ name, meaning: "" }));
}

/** What `name` means in `terms`, or "" for a name the vocabulary does not know. */
export function meaning(terms: readonly Term[], name: string): string {
  return terms.find((t) => t.name === name)?.meaning ?? "";
}

/** "name: meaning", for tooltips. */
export function explain(terms: readonly Term[], name: string): string {
  const m = meaning(terms, name);
  return m ? `${name}: ${m}` : name;
}
