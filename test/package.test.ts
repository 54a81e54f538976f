// The package as a user gets it: `npm pack`, installed into a temporary prefix
// (offline: it needs nothing from the registry), run from another directory; and
// what the tarball holds: a LICENSE, no runtime dependency the bundle already
// contains, every file its documents link to.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, normalize } from "node:path";
import { ROOT } from "./cli-harness.js";

const packageJson = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { license: string; dependencies?: Record<string, string> };

/** The files `npm pack` puts into the tarball (dist/ as the last build left it). */
function packedFiles(): string[] {
  const out = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: ROOT, encoding: "utf8" });
  return (JSON.parse(out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path).sort();
}

test("the tarball holds a LICENSE (MIT, as package.json says), the README, docs/ and the examples", () => {
  const files = packedFiles();
  for (const name of ["LICENSE", "README.md", "package.json", "dist/cli.js", "dist/gen-networkd.cjs", "docs/operate.md", "examples/seed.toml"]) assert.ok(files.includes(name), `${name} is packed`);
  assert.is(packageJson.license, "MIT");
  assert.match(readFileSync(join(ROOT, "LICENSE"), "utf8"), /^MIT License\n/);
});

test("every relative link of a packed document leads to a packed file", () => {
  const files = new Set(packedFiles());
  const broken: string[] = [];
  for (const doc of [...files].filter((f) => f.endsWith(".md"))) {
    for (const [, target] of readFileSync(join(ROOT, doc), "utf8").matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
      if (/^[a-z]+:/.test(target!)) continue;
      const path = normalize(join(dirname(doc), target!));
      if (!files.has(path) && ![...files].some((f) => f.startsWith(`${path}/`))) broken.push(`${doc} -> ${target}`);
    }
  }
  assert.equal(broken, []);
});

test("no runtime dependencies: the bundle holds them all", () => {
  assert.equal(Object.keys(packageJson.dependencies ?? {}), []);
  const bundle = readFileSync(join(ROOT, "dist/gen-networkd.cjs"), "utf8");
  // nunjucks requires chokidar only for its watch mode (inside a try), which we never turn on.
  const optional = new Set(["chokidar"]);
  const required = [...bundle.matchAll(/require\("([^"]+)"\)/g)]
    .map((m) => m[1]!)
    .filter((name) => !name.startsWith("node:") && !builtinModules.includes(name.split("/")[0]!) && !optional.has(name));
  assert.equal([...new Set(required)], [], "the bundle requires nothing outside node");
});

test("installed from the packed tarball into a prefix, it runs from another directory", () => {
  const scratch = mkdtempSync(join(tmpdir(), "gen-networkd-package-"));
  try {
    execFileSync("npm", ["pack", "--ignore-scripts", "--pack-destination", scratch], { cwd: ROOT, stdio: "ignore" });
    const tarball = readdirSync(scratch).find((name) => name.endsWith(".tgz"))!;
    const prefix = join(scratch, "prefix");
    execFileSync("npm", ["install", "--global", "--prefix", prefix, "--offline", "--no-audit", "--no-fund", join(scratch, tarball)], { cwd: scratch, stdio: "ignore" });
    const work = join(scratch, "work");
    mkdirSync(work);
    const bin = join(prefix, "bin/gen-networkd");
    const version = spawnSync(bin, ["--version"], { cwd: work, encoding: "utf8" });
    assert.is(version.status, 0, version.stderr);
    const seed = join(prefix, "lib/node_modules/gen-networkd/examples/seed.toml");
    const run = spawnSync(bin, [seed, "-o", "net"], { cwd: work, encoding: "utf8" });
    assert.is(run.status, 0, run.stderr);
    assert.ok(existsSync(join(work, "net/50-wg0.network")));
    assert.equal(readdirSync(join(prefix, "lib/node_modules/gen-networkd")).filter((n) => n === "node_modules"), [], "nothing else installed");
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});

test.run();
