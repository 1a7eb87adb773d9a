// The tab's tag filter from the command line, for tests/test_tag_filter.py: the Python tests
// put the route, the CLI and the tab side by side on the same patterns. Reads JSON on stdin:
//   {"patterns": [...], "tags": [...]}  ->  per pattern {"error": ...} or {"matches": [bool per tag]}
//   {"pattern": ..., "ranking": <the ranking route's JSON>}  ->  {"error": ..., "rows": [[run, tag], ...]},
// the rows the tab shows for that answer with the pattern typed, every run, role and status on.
import { build } from "esbuild";
import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

const entry = `
export { compileTagFilter } from "../src/tagfilter";
export { parseRanking } from "../src/api";
export { filterRows } from "../src/store";
`;
const bundle = await build({
  stdin: { contents: entry, resolveDir: dirname(fileURLToPath(import.meta.url)), loader: "ts" },
  bundle: true, write: false, format: "esm", platform: "node", target: "node20", logLevel: "warning",
});
const tab = await import("data:text/javascript;base64," + Buffer.from(bundle.outputFiles[0].text).toString("base64"));

const input = JSON.parse(readFileSync(0, "utf8"));
let out;
if (input.patterns) {
  out = input.patterns.map((p) => {
    const { re, error } = tab.compileTagFilter(p);
    return re ? { matches: input.tags.map((t) => re.test(t)) } : { error };
  });
} else {
  const filters = { tag: input.pattern, role: "all", status: [], hidden: [] };
  const rows = tab.filterRows(tab.parseRanking(input.ranking), filters).map((r) => [r.run, r.tag]);
  out = { error: tab.compileTagFilter(input.pattern).error, rows };
}
process.stdout.write(JSON.stringify(out));
