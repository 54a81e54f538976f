// Builds dist/ after `tsc` has type-checked the sources:
//
//   dist/gen-networkd.cjs        the CLI and its dependencies in one CommonJS file
//   dist/gen-networkd.cjs.cache  V8's code cache for it, from one run on the country example
//   dist/cli.js                  the entry point (scripts/launcher.js), which runs the bundle with that cache
//
// Node's own start is most of a run on a small spec, and what is ours of it was mostly
// resolving, compiling and linking modules: one file starts faster than ~25 modules plus
// their dependencies, CommonJS faster than an ES module graph, and cached bytecode faster
// than compiling it again. Templates stay files, read from ../templates relative to dist/.

import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

await build({
  entryPoints: ["src/cli.ts"],
  outfile: "dist/gen-networkd.cjs",
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  // The sources are ES modules that find templates and package.json relative to import.meta.url.
  define: { "import.meta.url": "__importMetaUrl" },
  banner: { js: 'const __importMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
  logLevel: "warning",
});
copyFileSync("scripts/launcher.js", "dist/cli.js");

// A run that reads a prefix list and renders every format compiles what runs use.
const scratch = mkdtempSync(join(tmpdir(), "gen-networkd-build-"));
try {
  execFileSync(process.execPath, ["dist/cli.js", "examples/country/country.toml", "--format", "all", "-o", scratch], {
    env: { ...process.env, GEN_NETWORKD_WRITE_CODE_CACHE: "1" },
    stdio: ["ignore", "ignore", "pipe"], // its notes are not the build's; a failure still shows them
  });
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
