// Bundle the tab into ONE ES module at tb_stagnation/static/index.js (or the path given
// as the first argument). Deterministic: same sources and lock file, same bytes.
import { build } from "esbuild";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outfile = resolve(here, process.argv[2] ?? "../tb_stagnation/static/index.js");
mkdirSync(dirname(outfile), { recursive: true });

await build({
  absWorkingDir: here,
  entryPoints: ["src/index.ts"],
  bundle: true,
  format: "esm",
  target: "es2020",
  platform: "browser",
  minify: true,
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  loader: { ".css": "text" },
  banner: {
    js: "// tb-stagnation: the Stagnation tab. Built from frontend/ by `npm run build`; do not edit.\n// Bundles uPlot (MIT License, Copyright (c) 2022 Leon Sorokin, https://github.com/leeoniya/uPlot).",
  },
  outfile,
  logLevel: "warning",
});
