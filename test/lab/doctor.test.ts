// doctor on a real lab host: the seed spec applied by the real networkd (with our
// networkd.conf drop-in in effect, as on a real host), a userspace WireGuard with a
// live handshake, and tailscale's rules and table 52 added beside ours. A healthy
// host passes every check; each injected fault is reported by the matching check,
// and (where the lab can run it) the fix doctor prints makes the host healthy again.
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as assert from "uvu/assert";
import type { Check } from "../../src/doctor.js";
import { labSuite } from "./harness.js";
import { CLI, ROOT, SplitCase } from "./case.js";
import { readSpec } from "./expect.js";
import { ADDR } from "./lab.js";
import { CommandError, run } from "./proc.js";

const TAILSCALE_RULES = [
  ["pref", "5210", "fwmark", "0x80000/0xff0000", "table", "main"],
  ["pref", "5230", "fwmark", "0x80000/0xff0000", "table", "default"],
  ["pref", "5250", "fwmark", "0x80000/0xff0000", "type", "unreachable"],
  ["pref", "5270", "table", "52"],
];

const faults: string[] = [];

async function setUp(): Promise<SplitCase> {
  const raw = await readSpec(join(ROOT, "examples/seed.toml"));
  const c = await SplitCase.applied("doctor", raw);
  try {
    // Our networkd.conf drop-in where this networkd reads it (/run/systemd/networkd.conf.d),
    // then networkd restarted: it now leaves foreign rules (tailscale's) alone.
    const dropIns = c.lab.hostPath("/run/systemd/networkd.conf.d");
    await mkdir(dropIns, { recursive: true });
    await writeFile(join(dropIns, "50-wg0.conf"), await readFile(join(c.lab.genDir, "networkd.conf.d/50-wg0.conf"), "utf8"));
    await c.lab.stopNetworkd();
    await c.lab.startNetworkd();
    await c.lab.waitConfigured(await c.links());
    // tailscale, as far as routing sees it: its link, its table 52 and its rules.
    await c.lab.ip("H", ["link", "add", "tailscale0", "type", "veth", "peer", "name", "ts-peer"]);
    await c.lab.ip("H", ["link", "set", "tailscale0", "up"]);
    await c.lab.ip("H", ["route", "add", "100.100.100.100", "dev", "tailscale0", "table", "52"]);
    await addTailscaleRules(c);
    return c;
  } catch (error) {
    await c.destroy();
    throw error;
  }
}

async function addTailscaleRules(c: SplitCase): Promise<void> {
  for (const family of ["-4", "-6"]) for (const rule of TAILSCALE_RULES) await c.lab.ip("H", [family, "rule", "add", ...rule]);
}

/** doctor as a user runs it on the host (inside H): its checks and exit code. */
async function doctor(c: SplitCase): Promise<{ code: number; checks: Check[]; failed: string[] }> {
  const argv = [process.execPath, CLI, "doctor", c.specPath, "-o", c.lab.genDir, "--json"];
  let stdout: string;
  let code = 0;
  try {
    stdout = await c.lab.inHost(argv, { timeoutMs: 30_000 });
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    stdout = error.stdout;
    code = Number(error.code);
  }
  const { checks } = JSON.parse(stdout) as { checks: Check[] };
  return { code, checks, failed: checks.filter((k) => k.status === "fail").map((k) => k.id) };
}

function summary(checks: Check[]): string {
  return checks.map((k) => `${k.status} ${k.id}: ${k.summary}${k.status === "fail" ? `\n    ${k.details.join("\n    ")}\n    fix: ${k.fix}` : ""}`).join("\n");
}

/** Runs the fix doctor printed, inside H, as a user would paste it. */
async function runFix(c: SplitCase, fix: string): Promise<void> {
  await c.lab.inHost(["sh", "-c", fix.replace(/ \((?:and|or) .*\)$/, "")], { timeoutMs: 30_000 });
}

/** Injects a fault; asserts doctor reports it by CHECK (with DETAIL), exit 1; then FIX (doctor's, or the lab's) and a healthy host again. */
async function fault(c: SplitCase, name: string, check: string, detail: RegExp, inject: () => Promise<unknown>, repair: "doctor's fix" | (() => Promise<unknown>)): Promise<void> {
  await inject();
  const sick = await doctor(c);
  const reported = sick.checks.find((k) => k.id === check)!;
  assert.is(sick.code, 1, `${name}: exit code\n${summary(sick.checks)}`);
  assert.is(reported.status, "fail", `${name}: not reported by ${check}\n${summary(sick.checks)}`);
  assert.match(reported.details.join("\n"), detail, `${name}: ${check}'s evidence`);
  assert.ok(reported.fix, `${name}: no fix`);
  faults.push(`${name}: reported by ${check} (failed: ${sick.failed.join(", ")}); fix: ${reported.fix}`);
  if (repair === "doctor's fix") await runFix(c, reported.fix!);
  else await repair();
  await c.lab.waitConfigured(await c.links());
  const healed = await doctor(c);
  assert.equal(healed.failed, [], `${name}: still failing after the fix "${reported.fix}"\n${summary(healed.checks)}`);
}

const t = labSuite("lab: doctor on a live host", setUp, async (c) => {
  if (faults.length) console.log(`doctor faults injected and caught (${faults.length}):\n  ${faults.join("\n  ")}`);
  await c.destroy();
});

t.test("a healthy host passes every check, tailscale and the handshake included", async (c) => {
  const { code, checks } = await doctor(c);
  assert.is(code, 0, summary(checks));
  assert.equal(
    checks.map((k) => `${k.id} ${k.status}`),
    ["networkd pass", "files pass", "file-modes pass", "key-file pass", "links pass", "network-files pass", "rules pass", "route-count pass", "tables pass", "shadowing pass", "tailscale pass", "rp-filter pass", "handshake pass", "allowed-ips pass", "boot-order skip"],
    summary(checks),
  );
});

t.test("human output: aligned checklist, no colors off a terminal, exit 0", async (c) => {
  const out = await c.lab.inHost([process.execPath, CLI, "doctor", c.specPath, "-o", c.lab.genDir]);
  assert.not.match(out, /\x1b\[/);
  // "ok" padded to the width of "skip" (boot-order, without a kill switch).
  assert.match(out, /^ok {4}files {10}5 generated files present, ours and current$/m, out);
  assert.match(out, /^ok {4}handshake {6}1 of 1 peers with a recent handshake$/m);
  assert.match(out, /^skip {2}boot-order {5}no kill switch/m);
  assert.match(out, /^all 14 checks passed$/m);
});

t.test("a deleted rule: rules, fixed by networkctl reconfigure", async (c) => {
  await fault(c, "rule deleted", "rules", /missing: ipv4 10086: from 0\.0\.0\.0\/32 ipproto tcp lookup 10086/, () => c.lab.ip("H", ["-4", "rule", "del", "priority", "10086", "from", "0.0.0.0/32", "ipproto", "tcp", "table", "10086"]), "doctor's fix");
});

t.test("our rule re-added before tailscale's: tailscale (and rules), fixed by deleting it", async (c) => {
  await fault(c, "rule before tailscale's", "tailscale", /ipv4 5000: from all ipproto tcp lookup 10086 precedes tailscale's rule 5270/, () => c.lab.ip("H", ["-4", "rule", "add", "priority", "5000", "ipproto", "tcp", "table", "10086"]), "doctor's fix");
});

t.test("a foreign rule before ours that takes captured TCP elsewhere: shadowing, fixed by deleting it", async (c) => {
  await fault(
    c,
    "shadowing rule",
    "shadowing",
    /tcp IPv4 flows are decided by ipv4 100: from all ipproto tcp lookup 100 before ours \(10086\)/,
    async () => {
      await c.lab.ip("H", ["route", "add", "default", "via", "192.168.50.1", "table", "100"]);
      await c.lab.ip("H", ["-4", "rule", "add", "priority", "100", "ipproto", "tcp", "table", "100"]);
    },
    "doctor's fix",
  );
});

t.test("a missing table route: tables, fixed by networkctl reconfigure", async (c) => {
  await fault(c, "table route missing", "tables", /missing: ipv4 table 10086: 0\.0\.0\.0\/0 dev wg0/, () => c.lab.ip("H", ["route", "del", "default", "dev", "wg0", "table", "10086"]), "doctor's fix");
});

t.test("a throw deleted by hand: route-count, with the kernel's and the plan's counts, fixed by restarting networkd", async (c) => {
  await fault(c, "throw deleted", "route-count", /table 10086, ipv4: 8 routes in the kernel, 9 planned\n.*\ncause: not visible here: routes were deleted/, () => c.lab.ip("H", ["route", "del", "throw", "10.0.0.0/8", "table", "10086"]), async () => {
    // doctor's fix is systemctl restart systemd-networkd; the lab's networkd is not a service.
    await c.lab.stopNetworkd();
    await c.lab.startNetworkd();
  });
});

t.test("the tunnel link down: links, fixed by networkctl up + reconfigure", async (c) => {
  await fault(c, "tunnel link down", "links", /wg0 is down/, () => c.lab.ip("H", ["link", "set", "wg0", "down"]), "doctor's fix");
});

t.test("a stale generated file (spec edited, not regenerated): files", async (c) => {
  const original = await readFile(c.specPath, "utf8");
  await fault(c, "stale generated file", "files", /stale: .*50-wg0(-split)?\.network/, () => writeFile(c.specPath, original.replace(/exclude = \[/, 'exclude = [ "198.18.0.0/15", ')), () => writeFile(c.specPath, original));
});

t.test("a world-readable key file: key-file, fixed by chmod", async (c) => {
  await fault(c, "world-readable key", "key-file", /world-readable \(mode 0644\)/, () => chmod(c.keyFile, 0o644), "doctor's fix");
});

t.test("tailscale's rules deleted: tailscale (its restart re-adds them; here the lab does)", async (c) => {
  await fault(
    c,
    "tailscale's rules deleted",
    "tailscale",
    /no IPv4 rule looks up table 52/,
    async () => {
      for (const family of ["-4", "-6"]) for (const rule of TAILSCALE_RULES) await c.lab.ip("H", [family, "rule", "del", ...rule]);
    },
    () => addTailscaleRules(c),
  );
});

t.test("strict reverse-path filtering: rp-filter, fixed by sysctl", async (c) => {
  await fault(c, "strict rp_filter", "rp-filter", /net\.ipv4\.conf\.all\.rp_filter=1, net\.ipv4\.conf\.wg0\.rp_filter=1/, () => run(["ip", "netns", "exec", c.lab.ns.H, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.wg0.rp_filter=1"]), "doctor's fix");
});

t.test("networkd stopped: networkd, fixed by starting it; no other fix asks the stopped networkd to reload", async (c) => {
  await fault(c, "networkd stopped", "networkd", /no systemd-networkd process shares this network namespace/, () => c.lab.stopNetworkd(), async () => {
    // doctor's fix is systemctl enable --now systemd-networkd; the lab's networkd is not a service.
    const sick = await doctor(c);
    for (const check of sick.checks.filter((k) => k.status === "fail" && k.id !== "networkd")) assert.not.match(check.fix!, /networkctl/, `${check.id}: ${check.fix}`);
    await c.lab.startNetworkd();
  });
});

t.test("a peer's allowed ips narrowed by hand: captured TCP is lost in WireGuard; allowed-ips, fixed by restoring them", async (c) => {
  const peer = (await c.lab.inHost(["wg", "show", "wg0", "peers"])).trim();
  const tcpToServer = async () => (await c.lab.probe([{ proto: "tcp", host: ADDR.server4 }]))[0]!;
  assert.ok((await tcpToServer()).ok, "captured TCP reaches the server through wg0");
  await fault(
    c,
    "allowed ips narrowed",
    "allowed-ips",
    /^IPv4 0\.0\.0\.0\/5, 8\.0\.0\.0\/7, 11\.0\.0\.0\/8 and \d+ more prefixes$/m,
    async () => {
      await c.lab.inHost(["wg", "set", "wg0", "peer", peer, "allowed-ips", "10.253.0.0/24"]);
      const lost = await tcpToServer();
      assert.not.ok(lost.ok, `captured TCP to ${ADDR.server4} outside every peer's allowed ips still arrived: ${JSON.stringify(lost)}`);
    },
    async () => {
      await c.lab.inHost(["wg", "set", "wg0", "peer", peer, "allowed-ips", "0.0.0.0/0,::/0"]);
      assert.ok((await tcpToServer()).ok, "captured TCP arrives again");
    },
  );
});

t.run();
