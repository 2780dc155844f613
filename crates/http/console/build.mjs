// Bundles src/ into dist/console.js, stamped with a fingerprint of the sources that a Rust test
// (crates/http/tests/console_bundle.rs) checks, so that a change to src/ without a rebuild fails.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { build } from "esbuild";

const files = readdirSync("src").filter((f) => f.endsWith(".ts")).sort();
const hash = createHash("sha256");
for (const f of files) hash.update(`${f}\n${readFileSync(`src/${f}`, "utf8")}\n`);
const sources = hash.digest("hex");

await build({
  entryPoints: ["src/main.ts"],
  bundle: true,
  format: "esm",
  target: "es2020",
  minify: true,
  legalComments: "none",
  banner: { js: `// orchestrator console; sources sha256 ${sources}` },
  outfile: "dist/console.js",
});
console.log(`dist/console.js built from ${files.length} sources (${sources.slice(0, 12)})`);
