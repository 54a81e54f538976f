// Issue 5.1, coexisting with tailscale. tailscale's four policy rules per family
// (5210/5230/5250 on its fwmark 0x80000/0xff0000, 5270 `lookup 52`) and a table-52
// route to a tailnet peer (a namespace behind ts0) are added by hand in H before
// networkd starts, as when tailscaled starts first. Two hosts side by side:
//   - with our networkd.conf drop-in (ManageForeignRoutingPolicyRules=no) where
//     networkd reads it: tailscale's rules survive start, regenerate + `networkctl
//     reload`, and restart; the tailnet peer is reached through table 52, and
//     tailscaled's own (marked) connections are not captured;
//   - without it (the drop-in written where networkd does not look): pins down what
//     networkd itself does, i.e. removes them whenever it configures its links.
// Both hold on 252, 257 and the newest. A restart is one as under PID 1: 257 and
// later serialize their addresses and routes into the lab's stand-in for PID 1's
// fd store, but not their routing policy rules, so the rules of a previous
// configuration are foreign to the restarted networkd on every version.

import * as assert from "uvu/assert";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { labSuite } from "./harness.js";
import { ADDR } from "./lab.js";
import { LeakproofHost, setUpAll } from "./leakproof.js";
import { canonKernelRule } from "./expect.js";
import { poll } from "./proc.js";

const verbose = !!process.env.GEN_NETWORKD_LAB_VERBOSE;
const say = (lines: string[]) => verbose && console.log("\n" + lines.join("\n"));

const TAILNET_PEER = "100.101.102.103";
const TAILSCALE_IP = "100.80.0.2";
const TAILSCALE_MARK = 0x80000;
const TAILSCALE_RULES = [
  ["pref", "5210", "fwmark", "0x80000/0xff0000", "table", "main"],
  ["pref", "5230", "fwmark", "0x80000/0xff0000", "table", "default"],
  ["pref", "5250", "fwmark", "0x80000/0xff0000", "type", "unreachable"],
  ["pref", "5270", "table", "52"],
];
const TUNNEL_SOURCE = "10.253.0.2";
const TABLE_52_THROW = "10.99.0.0/16";

const spec = (priority: number) => ({
  version: 1,
  tunnel: { interface: "wg0", addresses: [`${TUNNEL_SOURCE}/32`] },
  split: { protocols: ["tcp"], priority, killswitch: true },
});

interface Host {
  host: LeakproofHost;
  /** tailscale's rules as the kernel shows them (canonical), before networkd ever ran. */
  tailscaleRules: string[];
}

async function addTailscaleRules(host: LeakproofHost): Promise<void> {
  for (const family of ["-4", "-6"]) for (const rule of TAILSCALE_RULES) await host.lab.ip("H", [family, "rule", "add", ...rule]);
}

async function tailscaleRulesLeft(h: Host): Promise<string[]> {
  const now = (await h.host.lab.rules()).map(canonKernelRule);
  return h.tailscaleRules.filter((r) => now.includes(r));
}

/** A lab host with a tailnet peer behind ts0 and tailscale's rules and table 52 set up by hand, then our files applied. */
async function tailscaleHost(tag: string, dropIn: boolean): Promise<Host> {
  const host = await LeakproofHost.create(tag);
  try {
    await host.attachNamespace("T", {
      hostLink: "ts0",
      hostAddress: `${TAILSCALE_IP}/32`,
      address: `${TAILNET_PEER}/32`,
      routes: [[TAILSCALE_IP, "dev", "eth0"]],
      echo: true,
    });
    await addTailscaleRules(host);
    await host.lab.ip("H", ["route", "add", TAILNET_PEER, "dev", "ts0", "table", "52"]);
    // A route without a device in table 52 (tailscale's kind for LAN access through an exit node).
    await host.lab.ip("H", ["route", "add", "throw", TABLE_52_THROW, "table", "52"]);
    const tailscaleRules = (await host.lab.rules()).map(canonKernelRule).sort();
    assert.equal(tailscaleRules.length, 2 * TAILSCALE_RULES.length, `tailscale's rules as set up: ${tailscaleRules.join("; ")}`);
    const unread = join(host.lab.work, "conf-not-read-by-networkd");
    await mkdir(unread);
    await host.generate([spec(10086)], dropIn ? {} : { confDir: unread });
    // The kernel must come to hold exactly our plan plus (with the drop-in) tailscale's rules;
    // without it, exactly our plan: networkd removes them before it installs ours.
    await host.start({ foreignRules: dropIn ? tailscaleRules : [] });
    return { host, tailscaleRules };
  } catch (err) {
    await host.destroy();
    throw err;
  }
}

/**
 * The paths that matter with tailscale, asked of the kernel and taken by real
 * connections: the tailnet peer, an internet connection, and one from a socket
 * marked like tailscaled's own. Returns one line per observation.
 */
async function observePaths(host: LeakproofHost): Promise<{ tailnet: string; internet: string; marked: string; lines: string[] }> {
  const where = (d: { table?: string; dev?: string; verdict: string; error?: string }) => (d.verdict === "unreachable" ? `unreachable (${d.error})` : `table ${d.table ?? "main"} dev ${d.dev}`);
  const tailnetRoute = await host.lab.routeGet(TAILNET_PEER, { ipproto: "tcp", tunnel: "wg0" });
  const internetRoute = await host.lab.routeGet(ADDR.server4, { ipproto: "tcp", tunnel: "wg0" });
  const markedRoute = await host.lab.routeGet(ADDR.server4, { ipproto: "tcp", mark: TAILSCALE_MARK, tunnel: "wg0" });
  const [tailnet, internet] = await host.probe([
    { proto: "tcp", host: TAILNET_PEER },
    { proto: "tcp", host: ADDR.server4 },
  ]);
  const marked = await host.probeMarked(ADDR.server4, TAILSCALE_MARK);
  const seen = (r: { ok: boolean; saw?: string; error?: string }) => (r.ok ? r.saw! : `failed: ${r.error}`);
  return {
    tailnet: `${where(tailnetRoute)}; server saw ${seen(tailnet!)}`,
    internet: `${where(internetRoute)}; server saw ${seen(internet!)}`,
    marked: `${where(markedRoute)}; server saw ${seen(marked)}`,
    lines: [
      `  TCP to the tailnet peer ${TAILNET_PEER}:          ${where(tailnetRoute)}; the peer saw ${seen(tailnet!)}`,
      `  TCP to the internet server:                   ${where(internetRoute)}; the server saw ${seen(internet!)}`,
      `  TCP with fwmark 0x80000 (SO_MARK) to it:      ${where(markedRoute)}; the server saw ${seen(marked)}`,
    ],
  };
}

/** With tailscale's rules in place: tailnet through table 52, the internet through wg0, tailscaled's own traffic direct. */
async function assertTailscaleWorks(host: LeakproofHost, step: string): Promise<void> {
  const paths = await observePaths(host);
  say([`with the drop-in, after ${step}:`, ...paths.lines]);
  assert.equal(paths.tailnet, `table 52 dev ts0; server saw ${TAILSCALE_IP}`, `${step}: the tailnet peer`);
  assert.equal(paths.internet.replace(/table \d+/, "table T"), `table T dev wg0; server saw ${TUNNEL_SOURCE}`, `${step}: the internet server`);
  assert.equal(paths.marked, `table main dev lan0; server saw ${ADDR.hostLan4}`, `${step}: tailscaled's own (marked) connection`);
}

const t = labSuite(
  "lab: leak-proof 1, tailscale's rules and table 52 beside ours",
  async () => {
    const [withDropIn, withoutDropIn] = await setUpAll([tailscaleHost("tsyes", true), tailscaleHost("tsno", false)], (h) => h.host.destroy());
    return { withDropIn, withoutDropIn };
  },
  async ({ withDropIn, withoutDropIn }) => {
    await Promise.all([withDropIn.host.destroy(), withoutDropIn.host.destroy()]);
  },
);

t.test("the drop-in is written where --conf-dir says, and networkd warns about none of our files", async ({ withDropIn }) => {
  const conf = await readFile(join(withDropIn.host.confDir, "50-wg0.conf"), "utf8");
  assert.match(conf, /^\[Network\]\nManageForeignRoutingPolicyRules=false$/m);
  assert.equal(await withDropIn.host.networkdWarnings(), []);
});

t.test("limitation: the drop-in keeps rules, not routes: networkd removes table 52's device-less throw at start (ManageForeignRoutes=yes)", async ({ withDropIn: h }) => {
  const table52 = await h.host.lab.routes(52, "ipv4");
  assert.equal(table52.map((r) => `${r.type ?? "unicast"} ${r.dst}${r.dev ? ` dev ${r.dev}` : ""}`), [`unicast ${TAILNET_PEER} dev ts0`]);
});

t.test("with the drop-in: after start, the tailnet is reached through table 52 and tailscaled's marked connections go direct", async ({ withDropIn: h }) => {
  assert.equal(await tailscaleRulesLeft(h), h.tailscaleRules);
  await assertTailscaleWorks(h.host, "start");
});

t.test("with the drop-in: tailscale's rules survive regenerate (priority changed) + networkctl reload", async ({ withDropIn: h }) => {
  await h.host.regenerateAndReload([spec(10090)], { foreignRules: h.tailscaleRules });
  assert.equal(await tailscaleRulesLeft(h), h.tailscaleRules);
  await assertTailscaleWorks(h.host, "regenerate + networkctl reload");
});

t.test("with the drop-in: tailscale's rules and table 52 survive wg0 deleted and recreated, and a networkd restart", async ({ withDropIn: h }) => {
  await h.host.deleteTunnel("wg0");
  await h.host.startTunnel("wg0");
  await h.host.lab.waitConfigured(await h.host.links());
  await h.host.waitKernelMatchesPlan(h.tailscaleRules);
  assert.equal(await tailscaleRulesLeft(h), h.tailscaleRules, "after wg0 was deleted and recreated");
  await h.host.restartNetworkd({ foreignRules: h.tailscaleRules });
  assert.equal(await tailscaleRulesLeft(h), h.tailscaleRules, "after restart");
  const table52 = await h.host.lab.routes(52, "ipv4");
  assert.equal(table52.map((r) => `${r.dst} dev ${r.dev}`), [`${TAILNET_PEER} dev ts0`], "tailscale's table 52 route");
  await assertTailscaleWorks(h.host, "wg0 recreated and networkd restarted");
});

t.test("limitation: with the drop-in, rules of ours from before a restart are foreign to the new networkd and stay (reload, not restart, after a change)", async ({ withDropIn: h }) => {
  const oldRules = (await h.host.lab.rules()).map(canonKernelRule).filter((r) => !h.tailscaleRules.includes(r)).sort();
  await h.host.generate([spec(10095)]);
  await h.host.lab.syncOverlay();
  await h.host.lab.stopNetworkd();
  await h.host.lab.startNetworkd();
  await h.host.lab.waitConfigured(await h.host.links());
  const plan = await h.host.planned();
  await poll("the new priority's rules", async () => {
    const now = (await h.host.lab.rules()).map(canonKernelRule);
    return plan.rules.every((r) => now.includes(r)) ? true : undefined;
  });
  const stale = (await h.host.lab.rules()).map(canonKernelRule).filter((r) => !plan.rules.includes(r) && !h.tailscaleRules.includes(r)).sort();
  say(["with the drop-in, regenerated (priority 10090 -> 10095) and restarted without a reload, the old rules stay:", ...stale.map((r) => `  ${r}`)]);
  assert.equal(stale, oldRules);
  await h.host.lab.networkctl(["reload"]);
  await h.host.lab.waitConfigured(await h.host.links());
  const afterReload = (await h.host.lab.rules()).map(canonKernelRule).filter((r) => !plan.rules.includes(r) && !h.tailscaleRules.includes(r)).sort();
  assert.equal(afterReload, stale, "a reload afterwards does not remove them either");
});

t.test("without the drop-in, networkd 252 removes all of tailscale's rules at start: tailnet and tailscaled's traffic break", async ({ withoutDropIn: h }) => {
  // start() waited for the kernel to hold exactly our plan, so none of tailscale's rules is left.
  assert.equal(await tailscaleRulesLeft(h), []);
  const paths = await observePaths(h.host);
  say(["without the drop-in, after start (networkd removed tailscale's 8 rules; table 52 kept):", ...paths.lines]);
  assert.equal(paths.tailnet, `table main dev lan0; server saw failed: ENETUNREACH`, "the tailnet peer without rule 5270");
  assert.equal(paths.marked.replace(/table \d+/, "table T"), `table T dev wg0; server saw ${TUNNEL_SOURCE}`, "tailscaled's own connection is captured");
});

t.test("without the drop-in, rules re-added after start (as tailscaled does) are removed again by regenerate + reload and by wg0 coming back", async ({ withoutDropIn: h }) => {
  await addTailscaleRules(h.host);
  assert.equal(await tailscaleRulesLeft(h), h.tailscaleRules);
  // Waits until the kernel holds exactly the plan: fails (naming the extra rules) if they stay.
  await h.host.regenerateAndReload([spec(10090)]);
  assert.equal(await tailscaleRulesLeft(h), [], "after regenerate + networkctl reload");
  const table52 = await h.host.lab.routes(52, "ipv4");
  assert.equal(table52.map((r) => `${r.dst} dev ${r.dev}`), [`${TAILNET_PEER} dev ts0`], "table 52's route (on a link networkd does not manage) stays");
  // A tunnel that goes away and comes back (a crash, wg-quick down/up) is a link networkd configures anew.
  await addTailscaleRules(h.host);
  await h.host.deleteTunnel("wg0");
  await h.host.startTunnel("wg0");
  await h.host.lab.waitConfigured(await h.host.links());
  await h.host.waitKernelMatchesPlan();
  assert.equal(await tailscaleRulesLeft(h), [], "after wg0 was deleted and recreated");
  // Recorded, not asserted: a restart while every link is already configured left them alone here.
  await addTailscaleRules(h.host);
  await h.host.restartNetworkd({ foreignRules: await tailscaleRulesLeft(h) });
  say([`without the drop-in, rules re-added once more, then networkd restarted: ${(await tailscaleRulesLeft(h)).length}/8 left`]);
});

t.run();
