// Rankings for the tests, built from the parts a test cares about.
import type { Finding, LayerPoint, Ranking, Row } from "../src/api";
import { FALLBACK } from "../src/definitions";

export function row(over: Partial<Row> = {}): Row {
  return {
    run: "a", tag: "conv1/kernel", layer: "conv1", role: "weight", order: 0, status: "moving",
    score: 1e-3, net: 0.1, samples: 10, first_step: 0, last_step: 90, floor: 1e-7, threshold: 1e-5,
    source: "histogram", axis: "step", stagnant_since: null, histogram_score: 1e-3, exact_score: null, sparkline: [], block: null, module: null, rank: 1,
    ...over,
  };
}

export function layer(over: Partial<LayerPoint> = {}): LayerPoint {
  return { run: "a", layer: "conv1", order: 0, tag: "conv1/kernel", role: "weight", score: 1e-3, status: "moving", source: "histogram", ...over };
}

export function finding(over: Partial<Finding> = {}): Finding {
  return { run: "a", kind: "frozen", tags: [], layers: [], since_step: null, message: "conv1 is frozen.", units: [], unit_count: 0, ...over };
}

/** A ranking of `rows` (ranked in the order given) and whatever else is passed. */
export function ranking(rows: Partial<Row>[], over: Partial<Ranking> = {}): Ranking {
  const full = rows.map((r, i) => row({ rank: i + 1, ...r }));
  return {
    ratio: 0.01,
    runs: [...new Set(full.map((r) => r.run))].sort(),
    rows: full,
    layers: [],
    findings: null,
    thinned: {},
    definitions: FALLBACK,
    freshness: { as_of: {}, refreshing: false },
    ...over,
  };
}

/** Two runs: a parameter, a gradient and a frozen layer in run a, one parameter in run b;
 * findings naming a gradient, a tag that is gone, and a layer that is nowhere. */
export function twoRuns(): Ranking {
  return ranking(
    [
      { run: "a", tag: "conv1/kernel", layer: "conv1" },
      { run: "a", tag: "conv2/kernel/gradient", layer: "conv2", role: "gradient" },
      { run: "a", tag: "conv3/kernel", layer: "conv3" },
      { run: "b", tag: "conv1/kernel", layer: "conv1" },
    ],
    {
      runs: ["a", "b"],
      layers: [layer({ run: "a", layer: "conv3", tag: "conv3/kernel" })],
      findings: [
        finding({ kind: "stagnant", tags: ["gone/kernel", "conv2/kernel/gradient"], layers: ["conv2"] }),
        finding({ kind: "frozen", tags: [], layers: ["conv3"] }),
        finding({ kind: "histogram_blind", tags: ["nowhere"], layers: ["nowhere"] }),
      ],
    },
  );
}
