// apply without networkd: which links a change makes it recreate, and that it
// refuses (writing nothing) when nobody can confirm. The reload path runs in the
// lab (test/lab/apply.test.ts).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { linksToRecreate } from "../src/apply.js";
import type { Changes } from "../src/write.js";

const root = new URL("..", import.meta.url).pathname;
const cli = join(root, "dist/cli.js");

const netdev = (header: string, port: number) => `# ${header}\n[NetDev]\nName=wg0\nKind=wireguard\n\n[WireGuard]\nListenPort=${port}\n`;
const none: Changes = { create: [], update: [], unchanged: [], stale: [], foreign: [], leftovers: [] };

test("a .netdev whose settings changed names its link; a header-only change does not", () => {
  const file = (old: string, content: string) => ({ dir: "/d", fileName: "50-wg0.netdev", content, old });
  assert.equal(linksToRecreate({ ...none, update: [file(netdev("spec-sha256=aaa", 51820), netdev("spec-sha256=bbb", 51820))] }), []);
  assert.equal(linksToRecreate({ ...none, update: [file(netdev("spec-sha256=aaa", 51820), netdev("spec-sha256=bbb", 51821))] }), ["wg0"]);
  assert.equal(linksToRecreate({ ...none, foreign: [file(netdev("someone else's", 1), netdev("ours", 51820))] }), ["wg0"]);
});

test("a .netdev removed from the spec names its link (networkd never deletes it); .network changes name none", () => {
  assert.equal(linksToRecreate({ ...none, stale: [{ path: "/d/50-wg0.netdev", old: netdev("x", 1) }] }), ["wg0"]);
  assert.equal(linksToRecreate({ ...none, update: [{ dir: "/d", fileName: "50-wg0.network", content: "[Match]\nName=wg0\n", old: "[Match]\nName=wg1\n" }] }), []);
});

test("without a terminal and without --yes: the diff, then a one-line refusal, exit 3, nothing written", () => {
  assert.ok(existsSync(cli), "dist/cli.js is missing: run `npm run build` (npm test does)");
  const work = mkdtempSync(join(tmpdir(), "gen-networkd-apply-"));
  try {
    writeFileSync(join(work, "spec.toml"), readFileSync(join(root, "examples/seed.toml"), "utf8"));
    const result = spawnSync(process.execPath, [cli, "apply", "spec.toml", "-o", "net"], { cwd: work, encoding: "utf8", input: "y\n" });
    assert.is(result.status, 3, result.stderr);
    assert.match(result.stdout, /^\+\[WireGuard\]$/m);
    assert.is(result.stderr.split("\n").filter((l) => !l.startsWith("gen-networkd: ipv6:")).join("\n"), "gen-networkd: apply: no terminal to confirm on, so nothing was written; review the diff above and pass --yes to apply it\n");
    assert.not.ok(existsSync(join(work, "net")) && readdirSync(join(work, "net")).length > 0, "files were written");
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test("on a terminal it asks; anything but yes writes nothing (run under script(1) for a terminal)", () => {
  const work = mkdtempSync(join(tmpdir(), "gen-networkd-apply-"));
  try {
    writeFileSync(join(work, "spec.toml"), readFileSync(join(root, "examples/seed.toml"), "utf8"));
    const result = spawnSync("script", ["-qec", `${process.execPath} ${cli} apply spec.toml -o net`, "/dev/null"], { cwd: work, encoding: "utf8", input: "n\n", env: { ...process.env, NO_COLOR: "1" } });
    assert.is(result.status, 1, result.stdout);
    assert.match(result.stdout, /Write these changes to net and reload networkd\? \[y\/N\] /);
    assert.match(result.stdout, /nothing written/);
    assert.not.ok(existsSync(join(work, "net")) && readdirSync(join(work, "net")).length > 0, "files were written");
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test("apply and doctor --help show an example; apply requires -o", () => {
  for (const command of ["apply", "doctor"]) {
    const result = spawnSync(process.execPath, [cli, command, "--help"], { encoding: "utf8" });
    assert.is(result.status, 0);
    assert.match(result.stdout, /Examples?:\n {2}sudo gen-networkd /, command);
  }
  const missing = spawnSync(process.execPath, [cli, "apply", "spec.toml"], { encoding: "utf8" });
  assert.is(missing.status, 2);
  assert.match(missing.stderr, /required option '-o, --output <dir>' not specified/);
});

test.run();
