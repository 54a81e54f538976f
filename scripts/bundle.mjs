// Bundles the CLI into one file, dist/cli.js, after `tsc` has type-checked the sources.
//
// One file starts much faster than ~25 modules plus their dependencies resolved and
// compiled one by one: node's startup is most of the time on small specs. Templates
// stay files, read from ../templates relative to dist/ as before.

import { build } from "esbuild";

await build({
  entryPoints: ["src/cli.ts"],
  outfile: "dist/cli.js",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  // nunjucks is CommonJS and requires node's built-in modules, which an ES module bundle has no `require` for.
  banner: { js: 'import { createRequire } from "node:module";\nconst require = createRequire(import.meta.url);' },
  logLevel: "warning",
});
