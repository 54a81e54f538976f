// Issue 5.4, the kill switch: the policy lives on the always-present anchor
// (wg0-split), so when wg0 goes down or is deleted the unreachable routes answer
// and captured traffic fails at once instead of leaving through lan0.
// Two hosts side by side:
//   - examples/laptop.toml (TCP and UDP, IPv4 and IPv6 through the tunnel): wg0 down,
//     then deleted, then recreated with wireguard-go;
//   - laptop.toml with the internet server's /24 (and /120) excluded but for a small block
//     around the server: the fewest routes nest that block through wg0 inside a throw, with
//     an unreachable twin; wg0 down must fail closed there too, not fall through the throw;
//   - two specs applied together, each with its own tunnel, anchor, table and
//     priority: wg1 (priority 9000, table 20000) takes TCP to 198.51.100.80 only,
//     wg0 (priority 10086, table 10086) all other TCP; each tunnel is deleted in
//     turn while the other carries on, and each anchor keeps its own policy.
// A leak is looked for where it would show: nft counters of packets to the
// internet server leaving H through lan0, and of packets from H's LAN addresses
// arriving at the server.

import * as assert from "uvu/assert";
import { fileURLToPath } from "node:url";
import { labSuite } from "./harness.js";
import { ADDR } from "./lab.js";
import { LeakproofHost, setUpAll } from "./leakproof.js";
import { readSpec } from "./expect.js";
import { AddressSet } from "../../src/prefix.js";
import { prefixOf } from "../prefix-of.js";

const verbose = !!process.env.GEN_NETWORKD_LAB_VERBOSE;
const say = (lines: string[]) => verbose && console.log("\n" + lines.join("\n"));

const WG0_SOURCE = "10.253.0.2";
const WG0_SOURCE6 = "fd42:253::2";
const WG1_SOURCE = "10.254.0.2";
/** The internet server's address on the inet segment: the one destination wg1's spec includes. */
const WG1_DESTINATION = ADDR.serverInet4;
const FAST_ERRORS = ["ENETUNREACH", "EHOSTUNREACH"];

interface Case {
  host: LeakproofHost;
  /** Packets to the internet server leaving H through lan0. */
  leavingViaLan: () => Promise<number>;
  /** Packets from H's LAN addresses arriving at the internet server. */
  arrivingDirect: () => Promise<number>;
}

async function killswitchHost(tag: string, specs: Record<string, any>[]): Promise<Case> {
  const host = await LeakproofHost.create(tag);
  try {
    await host.generate(specs);
    const servers = `{ ${ADDR.server4}, ${ADDR.serverInet4} }`;
    const leavingViaLan = await host.countPackets("H", "leak", "postrouting", [`oifname "lan0" ip daddr ${servers}`, `oifname "lan0" ip6 daddr ${ADDR.server6}`]);
    const arrivingDirect = await host.countPackets("I", "direct", "input", [`ip saddr ${ADDR.hostLan4}`, `ip6 saddr ${ADDR.hostLan6}`]);
    await host.start();
    return { host, leavingViaLan, arrivingDirect };
  } catch (err) {
    await host.destroy();
    throw err;
  }
}

type Flow = { label: string; proto: "tcp" | "udp"; dst: string };

const seen = (r: { ok: boolean; saw?: string; error?: string }) => (r.ok ? r.saw! : `failed: ${r.error}`);

/** Sends FLOWS from H; returns "saw ADDRESS" or "failed: CODE" per flow, plus the kernel's answer. */
async function observe(c: Case, flows: Flow[]): Promise<{ label: string; kernel: string; result: string }[]> {
  const results = await c.host.probe(flows.map((f) => ({ proto: f.proto, host: f.dst })));
  return Promise.all(
    flows.map(async (f, i) => {
      const d = await c.host.lab.routeGet(f.dst, { ipproto: f.proto, tunnel: "wg0" });
      const kernel = d.verdict === "unreachable" ? `unreachable (${d.error})` : `table ${d.table ?? "main"} dev ${d.dev}`;
      return { label: f.label, kernel, result: seen(results[i]!) };
    }),
  );
}

/** The kernel holds every planned rule and route except the paths through the tunnels in GONE (their links are down or deleted). */
async function policyKept(host: LeakproofHost, gone: string[]): Promise<void> {
  const plan = await host.planned();
  const kernel = await host.kernel(plan.tables);
  const expectedRoutes = plan.routes.filter((r) => !gone.some((iface) => r.includes(` dev ${iface}`)));
  assert.equal(kernel.rules, plan.rules, "every rule of every anchor is still there");
  assert.equal(kernel.routes, expectedRoutes, `every throw and unreachable route is still there; only the paths through ${gone.join(", ")} are gone`);
}

async function assertNoLeak(c: Case, when: string): Promise<void> {
  assert.equal(await c.leavingViaLan(), 0, `${when}: packets to the internet server left through lan0`);
  assert.equal(await c.arrivingDirect(), 0, `${when}: the internet server received packets from H's LAN address`);
}

const LAPTOP_FLOWS: Flow[] = [
  { label: "TCP to the internet server", proto: "tcp", dst: ADDR.server4 },
  { label: "UDP to the internet server", proto: "udp", dst: ADDR.server4 },
  { label: "IPv6 TCP to the internet server", proto: "tcp", dst: ADDR.server6 },
  { label: "TCP to the LAN host", proto: "tcp", dst: ADDR.lanHost4 },
];

const wg0Spec = { version: 1, tunnel: { interface: "wg0", addresses: [`${WG0_SOURCE}/32`] }, split: { protocols: ["tcp"], killswitch: true, ipv6: "direct" } };
const wg1Spec = {
  version: 1,
  tunnel: { interface: "wg1", addresses: [`${WG1_SOURCE}/32`] },
  // Before wg0's rules, so it captures every source: its inbound rules would answer wg0's lookups from main.
  split: { protocols: ["tcp"], killswitch: true, ipv6: "direct", table: 20000, priority: 9000, include: [`${WG1_DESTINATION}/32`], inbound: "capture" },
};
const TWO_FLOWS: Flow[] = [
  { label: "TCP to 203.0.113.80 (wg0's)", proto: "tcp", dst: ADDR.server4 },
  { label: "TCP to 198.51.100.80 (wg1's)", proto: "tcp", dst: WG1_DESTINATION },
  { label: "TCP to the LAN host", proto: "tcp", dst: ADDR.lanHost4 },
];

/** The minimal cover of BLOCK without HOLE (added to the laptop's exclusions, which default to @local): excluded so, the fewest routes put HOLE through the tunnel inside a throw of BLOCK. */
const allBut = (block: string, hole: string) => AddressSet.of([prefixOf(block)]).minus(AddressSet.of([prefixOf(hole)])).cidrs();
const NESTED_HOLE4 = "203.0.113.80/28";
const NESTED_HOLE6 = "2001:db8:99::80/124";
const nestedSpec = (laptop: Record<string, any>) => ({
  ...laptop,
  split: { ...laptop.split, exclude: [...(laptop.split.exclude ?? ["@local"]), ...allBut("203.0.113.0/24", NESTED_HOLE4), ...allBut("2001:db8:99::/120", NESTED_HOLE6)] },
});

const t = labSuite(
  "lab: leak-proof 4, the kill switch: tunnels down, deleted and recreated",
  async () => {
    const laptop = await readSpec(fileURLToPath(new URL("../../examples/laptop.toml", import.meta.url)));
    const [single, two, nested] = await setUpAll(
      [killswitchHost("kslaptop", [laptop]), killswitchHost("kstwo", [wg0Spec, wg1Spec]), killswitchHost("ksnest", [nestedSpec(laptop)])],
      (c) => c.host.destroy(),
    );
    return { single, two, nested };
  },
  async ({ single, two, nested }) => {
    await Promise.all([single.host.destroy(), two.host.destroy(), nested.host.destroy()]);
  },
);

t.test("nested: the server's block goes through wg0 inside a throw, with its unreachable twin", async ({ nested }) => {
  const plan = await nested.host.planned();
  for (const [block, hole] of [["203.0.113.0/24", NESTED_HOLE4], ["2001:db8:99::/120", NESTED_HOLE6]]) {
    assert.ok(plan.routes.some((r) => r.includes(`throw ${block}`)), `a throw for ${block}: ${plan.routes.join("; ")}`);
    assert.ok(plan.routes.some((r) => r.includes(`${hole} dev wg0`)), `${hole} through wg0: ${plan.routes.join("; ")}`);
    assert.ok(plan.routes.some((r) => r.includes(`unreachable ${hole}`)), `${hole}'s unreachable twin: ${plan.routes.join("; ")}`);
  }
  assert.equal(await nested.host.networkdWarnings(), []);
  const rows = await observe(nested, LAPTOP_FLOWS);
  say(["nested, wg0 up:", ...rows.map((r) => `  ${r.label.padEnd(34)} kernel: ${r.kernel.padEnd(40)} ${r.result}`)]);
  assert.equal(rows.map((r) => r.result), [WG0_SOURCE, WG0_SOURCE, WG0_SOURCE6, ADDR.hostLan4]);
  await assertNoLeak(nested, "nested, wg0 up");
});

t.test("nested: wg0 down: the nested block fails at once instead of falling through its throw; the rest of the block is direct", async ({ nested }) => {
  const { host } = nested;
  await host.lab.ip("H", ["link", "set", "wg0", "down"]);
  await policyKept(host, ["wg0"]);
  const rows = await observe(nested, LAPTOP_FLOWS);
  say(["nested, wg0 down:", ...rows.map((r) => `  ${r.label.padEnd(34)} kernel: ${r.kernel.padEnd(40)} ${r.result}`)]);
  for (const row of rows.slice(0, 3)) {
    assert.match(row.kernel, /^unreachable \((No route to host|Network is unreachable)\)$/, row.label);
    assert.ok(FAST_ERRORS.includes(row.result.replace("failed: ", "")), `${row.label}: ${row.result}`);
  }
  assert.equal(rows[3]!.result, ADDR.hostLan4, "the LAN host is still reached directly");
  await assertNoLeak(nested, "nested, wg0 down");
  // Outside the nested block the throw answers (`ip route get` sends nothing).
  for (const outside of ["203.0.113.1", "2001:db8:99::1"]) {
    const d = await host.lab.routeGet(outside, { ipproto: "tcp", tunnel: "wg0" });
    assert.ok(d.verdict !== "unreachable" && (d.table ?? "main") === "main", `${outside}: ${JSON.stringify(d)}`);
  }
});

t.test("networkd warns about none of the files, with one spec and with two in one directory", async ({ single, two }) => {
  assert.equal(await single.host.networkdWarnings(), []);
  assert.equal(await two.host.networkdWarnings(), []);
});

t.test("laptop: with wg0 up, TCP, UDP and IPv6 go through it", async ({ single }) => {
  const rows = await observe(single, LAPTOP_FLOWS);
  say(["laptop, wg0 up:", ...rows.map((r) => `  ${r.label.padEnd(34)} kernel: ${r.kernel.padEnd(40)} ${r.result}`)]);
  assert.equal(rows.map((r) => r.result), [WG0_SOURCE, WG0_SOURCE, WG0_SOURCE6, ADDR.hostLan4]);
  await assertNoLeak(single, "wg0 up");
});

for (const step of ["down", "deleted"] as const) {
  t.test(`laptop: wg0 ${step}: captured traffic fails at once, nothing leaves through lan0, the LAN still works`, async ({ single }) => {
    const { host } = single;
    if (step === "down") await host.lab.ip("H", ["link", "set", "wg0", "down"]);
    else await host.deleteTunnel("wg0");
    await policyKept(host, ["wg0"]);
    const rows = await observe(single, LAPTOP_FLOWS);
    say([`laptop, wg0 ${step}:`, ...rows.map((r) => `  ${r.label.padEnd(34)} kernel: ${r.kernel.padEnd(40)} ${r.result}`)]);
    for (const row of rows.slice(0, 3)) {
      assert.match(row.kernel, /^unreachable \((No route to host|Network is unreachable)\)$/, row.label);
      assert.ok(FAST_ERRORS.includes(row.result.replace("failed: ", "")), `${row.label}: ${row.result}`);
    }
    assert.equal(rows[3]!.result, ADDR.hostLan4, "the LAN host is still reached directly");
    await assertNoLeak(single, `wg0 ${step}`);
  });
}

t.test("laptop: wg0 recreated (wireguard-go, configured from the .netdev): traffic flows through it again", async ({ single }) => {
  const { host } = single;
  await host.startTunnel("wg0");
  await host.lab.waitConfigured(await host.links());
  await host.waitKernelMatchesPlan();
  const rows = await observe(single, LAPTOP_FLOWS);
  say(["laptop, wg0 recreated:", ...rows.map((r) => `  ${r.label.padEnd(34)} kernel: ${r.kernel.padEnd(40)} ${r.result}`)]);
  assert.equal(rows.map((r) => r.result), [WG0_SOURCE, WG0_SOURCE, WG0_SOURCE6, ADDR.hostLan4]);
  await assertNoLeak(single, "wg0 recreated");
});

t.test("two specs: both anchors' rules and routes are in the kernel, each tunnel carries its own traffic", async ({ two }) => {
  const anchors = (await two.host.links()).filter((l) => l.endsWith("-split")).sort();
  assert.equal(anchors, ["wg0-split", "wg1-split"]);
  const rows = await observe(two, TWO_FLOWS);
  say(["two specs, both up:", ...rows.map((r) => `  ${r.label.padEnd(34)} kernel: ${r.kernel.padEnd(40)} ${r.result}`)]);
  assert.equal(rows.map((r) => r.result), [WG0_SOURCE, WG1_SOURCE, ADDR.hostLan4]);
});

for (const [gone, other] of [["wg0", "wg1"], ["wg1", "wg0"]] as const) {
  t.test(`two specs: ${gone} deleted: its traffic fails, ${other}'s still flows, both anchors keep their policy; ${gone} recreated`, async ({ two }) => {
    const { host } = two;
    await host.deleteTunnel(gone);
    await policyKept(host, [gone]);
    const rows = await observe(two, TWO_FLOWS);
    say([`two specs, ${gone} deleted:`, ...rows.map((r) => `  ${r.label.padEnd(34)} kernel: ${r.kernel.padEnd(40)} ${r.result}`)]);
    const expected = gone === "wg0" ? ["failed", WG1_SOURCE, ADDR.hostLan4] : [WG0_SOURCE, "failed", ADDR.hostLan4];
    assert.equal(
      rows.map((r) => (r.result.startsWith("failed: ") && FAST_ERRORS.includes(r.result.slice(8)) ? "failed" : r.result)),
      expected,
      JSON.stringify(rows),
    );
    await assertNoLeak(two, `${gone} deleted`);
    await host.startTunnel(gone);
    await host.lab.waitConfigured(await host.links());
    await host.waitKernelMatchesPlan();
    assert.equal((await observe(two, TWO_FLOWS)).map((r) => r.result), [WG0_SOURCE, WG1_SOURCE, ADDR.hostLan4], `after ${gone} was recreated`);
    await assertNoLeak(two, `${gone} recreated`);
  });
}

t.test("two specs: the leak counters do count: UDP (neither spec captures it) to the internet server goes direct", async ({ two }) => {
  const [udp] = await two.host.probe([{ proto: "udp", host: ADDR.serverInet4 }]);
  assert.equal(seen(udp!), ADDR.hostLan4);
  assert.ok((await two.leavingViaLan()) > 0 && (await two.arrivingDirect()) > 0, "a direct datagram is seen by both counters");
});

t.run();
