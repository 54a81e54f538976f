// apply without networkd: which links a change makes it recreate, and that it
// refuses (writing nothing) when nobody can confirm. The reload path runs in the
// lab (test/lab/apply.test.ts).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { netdevSteps } from "../src/apply.js";
import type { Changes } from "../src/write.js";

const root = new URL("..", import.meta.url).pathname;
const cli = join(root, "dist/cli.js");

const netdev = (header: string, port: number) => `# ${header}\n[NetDev]\nName=wg0\nKind=wireguard\n\n[WireGuard]\nListenPort=${port}\n`;
const none: Changes = { create: [], update: [], unchanged: [], stale: [], foreign: [], leftovers: [], notes: [] };

test("networkd 252 and an unknown version: a .netdev whose settings changed is recreated; a header-only change is not", () => {
  const file = (old: string, content: string) => ({ dir: "/d", fileName: "50-wg0.netdev", content, old });
  for (const version of [252, 256, undefined]) {
    assert.equal(netdevSteps({ ...none, update: [file(netdev("spec-sha256=aaa", 51820), netdev("spec-sha256=bbb", 51820))] }, version), { recreate: [], updatedByReload: [] });
    assert.equal(netdevSteps({ ...none, update: [file(netdev("spec-sha256=aaa", 51820), netdev("spec-sha256=bbb", 51821))] }, version), { recreate: ["wg0"], updatedByReload: [] });
    assert.equal(netdevSteps({ ...none, foreign: [file(netdev("someone else's", 1), netdev("ours", 51820))] }, version), { recreate: ["wg0"], updatedByReload: [] });
  }
});

test("networkd 257 and later: the reload applies a changed .netdev in place, unless its kind changed", () => {
  const file = (old: string, content: string) => ({ dir: "/d", fileName: "50-wg0.netdev", content, old });
  for (const version of [257, 262]) {
    assert.equal(netdevSteps({ ...none, update: [file(netdev("aaa", 51820), netdev("bbb", 51821))] }, version), { recreate: [], updatedByReload: ["wg0"] });
    const bridge = "[NetDev]\nName=wg0\nKind=bridge\n";
    assert.equal(netdevSteps({ ...none, update: [file(bridge, netdev("bbb", 51821))] }, version), { recreate: ["wg0"], updatedByReload: [] });
  }
});

test("a .netdev removed from the spec is deleted on every version (networkd never deletes it); .network changes name none", () => {
  for (const version of [252, 257, undefined]) {
    assert.equal(netdevSteps({ ...none, stale: [{ path: "/d/50-wg0.netdev", old: netdev("x", 1) }] }, version), { recreate: ["wg0"], updatedByReload: [] });
    // An anchor a shrunk list no longer needs: its port-less bridge goes with its files.
    const anchor = "# x\n[NetDev]\nName=wg0-split-3\nKind=bridge\n";
    assert.equal(netdevSteps({ ...none, stale: [{ path: "/d/50-wg0-split-3.netdev", old: anchor }] }, version), { recreate: ["wg0-split-3"], updatedByReload: [] });
    assert.equal(netdevSteps({ ...none, update: [{ dir: "/d", fileName: "50-wg0.network", content: "[Match]\nName=wg0\n", old: "[Match]\nName=wg1\n" }] }, version), { recreate: [], updatedByReload: [] });
  }
});

test("without a terminal and without --yes: the diff, then a one-line refusal, exit 3, nothing written", () => {
  assert.ok(existsSync(cli), "dist/cli.js is missing: run `npm run build` (npm test does)");
  const work = mkdtempSync(join(tmpdir(), "gen-networkd-apply-"));
  try {
    writeFileSync(join(work, "spec.toml"), readFileSync(join(root, "examples/seed.toml"), "utf8"));
    const result = spawnSync(process.execPath, [cli, "apply", "spec.toml", "-o", "net", "--any-dir"], { cwd: work, encoding: "utf8", input: "y\n" });
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
    const result = spawnSync("script", ["-qec", `${process.execPath} ${cli} apply spec.toml -o net --any-dir`, "/dev/null"], { cwd: work, encoding: "utf8", input: "n\n", env: { ...process.env, NO_COLOR: "1" } });
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
  assert.is(missing.stderr, "gen-networkd: apply: -o DIR is required: the directory networkd reads, e.g. -o /etc/systemd/network\n");
  const both = spawnSync(process.execPath, [cli, "apply", "spec.toml", "--confirm"], { encoding: "utf8" });
  assert.is(both.status, 2);
  assert.match(both.stderr, /--confirm decides the pending try; it takes no SPEC and no --try/);
  const seconds = spawnSync(process.execPath, [cli, "apply", "spec.toml", "-o", "/etc/systemd/network", "--try", "0"], { encoding: "utf8" });
  assert.is(seconds.status, 2);
  assert.match(seconds.stderr, /expected whole seconds from 1 to 86400/);
});

test("a directory networkd does not read is refused before anything is read or written, unless --any-dir", () => {
  const work = mkdtempSync(join(tmpdir(), "gen-networkd-apply-"));
  try {
    writeFileSync(join(work, "spec.toml"), readFileSync(join(root, "examples/seed.toml"), "utf8"));
    const refused = spawnSync(process.execPath, [cli, "apply", "spec.toml", "-o", "net", "--yes"], { cwd: work, encoding: "utf8" });
    assert.is(refused.status, 3, refused.stderr);
    assert.is(refused.stdout, "");
    assert.match(refused.stderr, /^gen-networkd: apply: networkd does not read net \(it reads \/etc\/systemd\/network, \/run\/systemd\/network, .*\), so applying there would change nothing; nothing was written; pass --any-dir/m);
    assert.not.ok(existsSync(join(work, "net")), "the directory was made");
    // A symlink to a directory networkd reads is that directory: accepted (and then refused for want of a terminal).
    symlinkSync("/usr/lib/systemd/network", join(work, "link"));
    const viaLink = spawnSync(process.execPath, [cli, "apply", "spec.toml", "-o", "link"], { cwd: work, encoding: "utf8" });
    assert.match(viaLink.stderr, /no terminal to confirm on/, viaLink.stderr);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test.run();
