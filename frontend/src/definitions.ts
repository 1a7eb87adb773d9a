// The ranking's vocabulary: statuses, roles, sources and finding kinds with what they mean.
// The server sends it as `definitions`, the same table the CLI prints from, so the tab never
// keeps its own copy of a meaning; FALLBACK stands in, field by field, only where the
// answer lacks one.

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
}

export const FALLBACK: Definitions = {
  statuses: [
    { name: "frozen", meaning: "every kept histogram is identical (or every logged update ratio is 0)" },
    { name: "stagnant", meaning: "moving far slower than the run's typical trainable parameter (below ratio x its median score)" },
    { name: "moving", meaning: "none of the others" },
    { name: "nonfinite", meaning: "a kept histogram (or logged RMS) holds NaN or Inf" },
    { name: "unresolved", meaning: "below the stagnant threshold, but the buckets cannot resolve that little movement" },
    { name: "insufficient", meaning: "fewer than two usable samples" },
  ],
  roles: [
    { name: "weight", meaning: "a layer's weight or kernel" },
    { name: "bias", meaning: "a layer's bias" },
    { name: "norm_scale", meaning: "a normalisation layer's scale (gamma)" },
    { name: "norm_offset", meaning: "a normalisation layer's offset (beta)" },
    { name: "moving_stat", meaning: "a normalisation layer's moving mean or variance" },
    { name: "gradient", meaning: "a gradient: changes with the data, never called stagnant" },
    { name: "activation", meaning: "an activation: changes with the data, never called stagnant" },
    { name: "other", meaning: "a tag whose role the name does not tell" },
  ],
  sources: [
    { name: "histogram", meaning: "drift between kept histograms: a lower bound on movement" },
    { name: "exact", meaning: "the logged update ratio ||ΔW||/||W|| per step" },
    { name: "checkpoint", meaning: "the update ratio measured between saved checkpoints" },
  ],
  finding_kinds: [],
  parameter_roles: ["weight", "bias", "norm_scale", "norm_offset", "moving_stat"],
  default_ratio: 0.01,
};

/** What `name` means in `terms`, or "" for a name the vocabulary does not know. */
export function meaning(terms: readonly Term[], name: string): string {
  return terms.find((t) => t.name === name)?.meaning ?? "";
}

/** "name: meaning", for tooltips. */
export function explain(terms: readonly Term[], name: string): string {
  const m = meaning(terms, name);
  return m ? `${name}: ${m}` : name;
}
