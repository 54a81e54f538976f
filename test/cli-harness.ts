// Running the built CLI as a user would, in a fresh temp directory per test.
import * as assert from "uvu/assert";
import type { Test } from "uvu";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = new URL("..", import.meta.url).pathname;
export const CLI = join(ROOT, "dist/cli.js");
/** The blog's example spec, which every workspace starts with as spec.toml. */
export const SEED = readFileSync(join(ROOT, "examples/seed.toml"), "utf8");

export function runCli(args: string[], cwd: string) {
  const result = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: "utf8" });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

export const listing = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).sort() : []);

/** Gives each test of the suite its own directory holding spec.toml; returns a getter for it. */
export function useWorkspace(test: Test, name: string): () => string {
  let work = "";
  test.before.each(() => {
    assert.ok(existsSync(CLI), "dist/cli.js is missing: run `npm run build` (npm test does)");
    work = mkdtempSync(join(tmpdir(), `gen-networkd-${name}-`));
    writeFileSync(join(work, "spec.toml"), SEED);
  });
  test.after.each(() => rmSync(work, { recursive: true, force: true }));
  return () => work;
}
