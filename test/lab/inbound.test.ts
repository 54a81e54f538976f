// Issue 12.1, split.inbound: replies stay on the link their connection came in on.
// Servers run in H itself (TCP and UDP on the wildcard addresses, and UDP bound to H's
// LAN addresses); clients on the internet server I (through R to H's LAN address, and
// through the peer P and the tunnel to H's tunnel address) and on the LAN host L.
// Three hosts side by side:
//   - examples/seed.toml (TCP, IPv6 blocked), inbound = "direct" (the default);
//   - the same with inbound = "capture" (the rules as before: the reply is captured);
//   - examples/laptop.toml (TCP and UDP, IPv6 through the tunnel, kill switch), also
//     with wg0 deleted and recreated.
// Outbound traffic from H is checked alongside: it must still be captured.

import * as assert from "uvu/assert";
import { fileURLToPath } from "node:url";
import { labSuite } from "./harness.js";
import { ADDR, type ProbeResult, type ProbeSpec } from "./lab.js";
import { LeakproofHost, setUpAll } from "./leakproof.js";
import { readSpec } from "./expect.js";

const verbose = !!process.env.GEN_NETWORKD_LAB_VERBOSE;
const say = (lines: string[]) => verbose && console.log("\n" + lines.join("\n"));

/** H's servers: TCP and UDP on the wildcard addresses; UDP bound to H's LAN addresses. */
const WILDCARD_PORT = 2222;
const BOUND_PORT = 2223;
const TUNNEL4 = "10.253.0.2";
const TUNNEL6 = "fd42:253::2";
/** The source the internet server's IPv6 connections to H's LAN take (its own address selection). */
const I6 = ADDR.server6;
const FAST_ERRORS = ["ENETUNREACH", "EHOSTUNREACH"];

interface Host {
  host: LeakproofHost;
  /** Captured packets (to the echo port of the internet server) leaving H through lan0. */
  capturedLeaving: () => Promise<number>;
}

async function inboundHost(tag: string, spec: Record<string, any>): Promise<Host> {
  const host = await LeakproofHost.create(tag);
  try {
    await host.generate([spec]);
    const to = `{ ${ADDR.server4}, ${ADDR.serverInet4} }`;
    const to6 = `{ ${ADDR.server6}, ${ADDR.serverInet6} }`;
    const capturedLeaving = await host.countPackets("H", "captured", "postrouting", [
      `oifname "lan0" ip daddr ${to} th dport 7777`,
      `oifname "lan0" ip6 daddr ${to6} th dport 7777`,
    ]);
    await host.start();
    await host.startHostServer("wildcard", [WILDCARD_PORT]);
    await host.startHostServer("bound", [BOUND_PORT], [ADDR.hostLan4, ADDR.hostLan6]);
    return { host, capturedLeaving };
  } catch (err) {
    await host.destroy();
    throw err;
  }
}

type Where = "I" | "L" | "H";
interface Flow extends ProbeSpec {
  label: string;
  from: Where;
}

const shown = (r: ProbeResult) => (r.ok ? `saw ${r.saw}${r.from ? ` (answer from ${r.from})` : ""}` : `failed: ${r.error}`);

/** Runs FLOWS from their clients (all of one client in one process), in order. */
async function send(h: Host, flows: Flow[]): Promise<ProbeResult[]> {
  const results = new Map<Flow, ProbeResult>();
  for (const where of ["I", "L", "H"] as const) {
    const mine = flows.filter((f) => f.from === where);
    if (mine.length === 0) continue;
    const place = where === "H" ? {} : { ns: h.host.lab.ns[where] };
    const answers = await h.host.probe(mine.map(({ label: _l, from: _f, ...spec }) => ({ timeoutMs: 3000, ...spec })), place);
    mine.forEach((f, i) => results.set(f, answers[i]!));
  }
  const out = flows.map((f) => results.get(f)!);
  say([`${h.host.lab.options.tag}:`, ...flows.map((f, i) => `  ${f.label.padEnd(58)} ${shown(out[i]!)}`)]);
  return out;
}

const inbound = (label: string, proto: "tcp" | "udp", from: "I" | "L", host: string, port = WILDCARD_PORT): Flow => ({ label, proto, from, host, port });
const outbound = (label: string, proto: "tcp" | "udp", host: string, localAddress?: string): Flow => ({ label, proto, from: "H", host, ...(localAddress ? { localAddress } : {}) });

const fastFailure = (r: ProbeResult) => !r.ok && FAST_ERRORS.includes(r.error ?? "");

const t = labSuite(
  "lab: split.inbound, replies stay on the link their connection came in on",
  async () => {
    const seed = await readSpec(fileURLToPath(new URL("../../examples/seed.toml", import.meta.url)));
    const laptop = await readSpec(fileURLToPath(new URL("../../examples/laptop.toml", import.meta.url)));
    const capture = structuredClone(seed);
    capture.split = { ...capture.split, inbound: "capture" };
    const [direct, captured, lap] = await setUpAll([inboundHost("inseed", seed), inboundHost("incapt", capture), inboundHost("inlap", laptop)], (h) => h.host.destroy());
    return { direct: direct!, captured: captured!, lap: lap! };
  },
  async ({ direct, captured, lap }) => {
    await Promise.all([direct.host.destroy(), captured.host.destroy(), lap.host.destroy()]);
  },
);

t.test("networkd warns about none of the files", async ({ direct, captured, lap }) => {
  for (const h of [direct, captured, lap]) assert.equal(await h.host.networkdWarnings(), [], h.host.lab.options.tag);
});

t.test('seed, inbound = "direct": TCP from the internet and the LAN to H is answered; H\'s own TCP is still captured', async ({ direct }) => {
  const [internet, tunnel, lan4, lan6, out4, out6] = await send(direct, [
    inbound("internet → H's LAN address, TCP", "tcp", "I", ADDR.hostLan4),
    inbound("internet → H's tunnel address (through P and wg0), TCP", "tcp", "I", TUNNEL4),
    inbound("LAN host → H, TCP", "tcp", "L", ADDR.hostLan4),
    inbound("LAN host → H, IPv6 TCP", "tcp", "L", ADDR.hostLan6),
    outbound("H → internet, TCP", "tcp", ADDR.server4),
    outbound("H → internet, IPv6 TCP (blocked)", "tcp", ADDR.server6),
  ]);
  assert.equal(shown(internet!), `saw ${ADDR.serverInet4}`, "the reply left through lan0, where the connection came in");
  assert.equal(shown(tunnel!), `saw ${ADDR.serverInet4}`, "a connection through the tunnel is answered through the tunnel");
  assert.equal(shown(lan4!), `saw ${ADDR.lanHost4}`);
  assert.equal(shown(lan6!), `saw ${ADDR.lanHost6}`);
  assert.equal(shown(out4!), `saw ${TUNNEL4}`, "outbound TCP is still captured");
  assert.ok(fastFailure(out6!), `blocked IPv6 still fails fast (no retry from the LAN address): ${shown(out6!)}`);
  assert.equal(await direct.capturedLeaving(), 0, "no captured packet left through lan0");
  // The escape hatch: a program that binds to the LAN address chooses the direct path.
  const [bound4] = await send(direct, [outbound("H → internet, TCP bound to H's LAN address", "tcp", ADDR.server4, ADDR.hostLan4)]);
  assert.equal(shown(bound4!), `saw ${ADDR.hostLan4}`, "a socket bound to the LAN address goes direct");
  assert.ok((await direct.capturedLeaving()) > 0, "the counter counts: the bound connection's packets left through lan0");
});

t.test('seed, inbound = "direct": inbound IPv6 TCP from the internet is answered although IPv6 is blocked; H\'s own IPv6 TCP stays blocked', async ({ direct }) => {
  const before = await direct.capturedLeaving();
  const [v6, out6] = await send(direct, [
    inbound("internet → H's LAN address, IPv6 TCP", "tcp", "I", ADDR.hostLan6),
    outbound("H → internet, IPv6 TCP (blocked)", "tcp", ADDR.server6),
  ]);
  assert.equal(shown(v6!), `saw ${I6}`, "the reply (it has a source port) left through lan0, where the connection came in");
  // The kernel retries the refused unbound connect from a LAN address: it has no source port yet, so it stays blocked.
  assert.ok(fastFailure(out6!), `unbound: ${shown(out6!)}`);
  assert.equal(await direct.capturedLeaving(), before, "no blocked IPv6 packet left through lan0");
  const reply = await direct.host.lab.routeGet(ADDR.serverInet6, { ipproto: "tcp", tunnel: "wg0", from: ADDR.hostLan6, sport: WILDCARD_PORT });
  assert.equal(reply.verdict, "direct", "the reply's lookup: " + JSON.stringify(reply.raw ?? reply.error));
  const retry = await direct.host.lab.routeGet(ADDR.serverInet6, { ipproto: "tcp", tunnel: "wg0", from: ADDR.hostLan6 });
  assert.equal(retry.verdict, "unreachable", "a connect's lookup from the LAN address, before it has a port: " + JSON.stringify(retry.raw ?? retry.error));
  // The escape hatch of IPv4 holds for IPv6 too: bind() to an address also picks the socket's port.
  const [bound6] = await send(direct, [outbound("H → internet, IPv6 TCP bound to H's LAN address", "tcp", ADDR.server6, ADDR.hostLan6)]);
  assert.equal(shown(bound6!), `saw ${ADDR.hostLan6}`, "a socket bound to the LAN address goes direct");
  assert.ok((await direct.capturedLeaving()) > before, "the counter counts: the bound connection's packets left through lan0");
});

t.test('seed, inbound = "capture": the reply to the internet client is captured and never arrives (the issue\'s report)', async ({ captured }) => {
  const [internet, lan4, out4] = await send(captured, [
    inbound("internet → H's LAN address, TCP", "tcp", "I", ADDR.hostLan4),
    inbound("LAN host → H, TCP", "tcp", "L", ADDR.hostLan4),
    outbound("H → internet, TCP", "tcp", ADDR.server4),
  ]);
  assert.equal(shown(internet!), "failed: timeout");
  assert.equal(shown(lan4!), `saw ${ADDR.lanHost4}`, "the LAN stays direct either way");
  assert.equal(shown(out4!), `saw ${TUNNEL4}`);
});

const LAPTOP_INBOUND: Flow[] = [
  inbound("internet → H's LAN address, TCP", "tcp", "I", ADDR.hostLan4),
  inbound("internet → H's LAN address, IPv6 TCP", "tcp", "I", ADDR.hostLan6),
  inbound("internet → H's LAN address, UDP to a bound server", "udp", "I", ADDR.hostLan4, BOUND_PORT),
  inbound("internet → H's LAN address, IPv6 UDP to a bound server", "udp", "I", ADDR.hostLan6, BOUND_PORT),
];
const LAPTOP_OUTBOUND: Flow[] = [
  outbound("H → internet, TCP", "tcp", ADDR.server4),
  outbound("H → internet, IPv6 TCP", "tcp", ADDR.server6),
  outbound("H → internet, UDP", "udp", ADDR.server4),
  outbound("H → internet, IPv6 UDP", "udp", ADDR.server6),
];

t.test("laptop (TCP and UDP, IPv6 through the tunnel, kill switch): inbound TCP and UDP to bound servers answered directly, both families; outbound captured", async ({ lap }) => {
  const results = await send(lap, [...LAPTOP_INBOUND, ...LAPTOP_OUTBOUND]);
  assert.equal(results.map(shown), [
    `saw ${ADDR.serverInet4}`,
    `saw ${I6}`,
    `saw ${ADDR.serverInet4} (answer from ${ADDR.hostLan4})`,
    `saw ${I6} (answer from ${ADDR.hostLan6})`,
    `saw ${TUNNEL4}`,
    `saw ${TUNNEL6}`,
    // I's echo server is on the wildcard address too: its answer's source is its own choice.
    `saw ${TUNNEL4} (answer from ${ADDR.serverInet4})`,
    `saw ${TUNNEL6} (answer from ${ADDR.server6})`,
  ]);
  assert.equal(await lap.capturedLeaving(), 0);
});

t.test("laptop: a UDP server on the wildcard address (no IP_PKTINFO) answers through the tunnel, from the tunnel's address", async ({ lap }) => {
  const results = await send(lap, [
    inbound("internet → H's LAN address, UDP to a wildcard server", "udp", "I", ADDR.hostLan4),
    inbound("internet → H's LAN address, IPv6 UDP to a wildcard server", "udp", "I", ADDR.hostLan6),
  ]);
  // The kernel has nothing to go on: the reply's lookup has no source, like any new datagram's.
  assert.equal(results.map(shown), [`saw ${ADDR.serverInet4} (answer from ${TUNNEL4})`, `saw ${I6} (answer from ${TUNNEL6})`]);
});

t.test("laptop, wg0 deleted: outbound fails fast in both families (IPv6 too: no retry from the LAN address), inbound IPv4 still answered, inbound IPv6 held by the kill switch", async ({ lap }) => {
  const { host } = lap;
  const before = await lap.capturedLeaving();
  await host.deleteTunnel("wg0");
  const results = await send(lap, [...LAPTOP_INBOUND, ...LAPTOP_OUTBOUND]);
  const [tcp4, tcp6, udp4, udp6, ...out] = results;
  assert.equal(shown(tcp4!), `saw ${ADDR.serverInet4}`, "IPv4 replies need no tunnel");
  assert.equal(shown(udp4!), `saw ${ADDR.serverInet4} (answer from ${ADDR.hostLan4})`);
  assert.equal(shown(tcp6!), "failed: timeout", "the IPv6 reply's lookup meets the kill switch while wg0 is gone");
  assert.equal(shown(udp6!), "failed: timeout");
  for (const [i, r] of out.entries()) assert.ok(fastFailure(r), `${LAPTOP_OUTBOUND[i]!.label}: ${shown(r)}`);
  assert.equal(await lap.capturedLeaving(), before, "no captured packet left through lan0");
  await host.startTunnel("wg0");
  await host.lab.waitConfigured(await host.links());
  await host.waitKernelMatchesPlan();
  const again = await send(lap, [...LAPTOP_INBOUND, ...LAPTOP_OUTBOUND]);
  assert.equal(again.filter((r) => r.ok).length, again.length, `after wg0 was recreated: ${again.map(shown).join("; ")}`);
});

t.run();
