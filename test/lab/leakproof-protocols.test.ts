// Issue 5.3, capturing UDP (or everything) without routing the tunnel's own
// encrypted packets into the tunnel. Two hosts side by side:
//   - managed wg0, protocols ["tcp", "udp", "ipv6-icmp"]: wg0 marks its packets
//     (FirewallMark=) and a rule at priority-2 sends the mark to main;
//   - unmanaged wg0 (made by the lab, as wg-quick with Table = off would), protocols
//     ["all"]: tunnel.endpoints lists the peer, whose address is thrown.
// Both: UDP to the internet server arrives through the tunnel, the WireGuard
// handshake happens (and, for the managed one, happens again on a recreated wg0)
// with the rules in place, its packets leave through lan0 and never through wg0
// (nft counters in H), and DNS-style UDP to the LAN host stays direct.

import * as assert from "uvu/assert";
import { labSuite } from "./harness.js";
import { ADDR } from "./lab.js";
import { LeakproofHost, setUpAll } from "./leakproof.js";

const verbose = !!process.env.GEN_NETWORKD_LAB_VERBOSE;
const say = (lines: string[]) => verbose && console.log("\n" + lines.join("\n"));

const TUNNEL_SOURCE = "10.253.0.2";
const DNS_PORT = 53;

interface Case {
  host: LeakproofHost;
  /** Packets to the peer's WireGuard port leaving H through lan0, and through wg0 (a loop). */
  wireguardViaLan: () => Promise<number>;
  wireguardViaTunnel: () => Promise<number>;
}

async function protocolsHost(tag: string, split: Record<string, unknown>, tunnel: Record<string, unknown>): Promise<Case> {
  const host = await LeakproofHost.create(tag, { echoPorts: [DNS_PORT] });
  try {
    await host.generate([{ version: 1, tunnel: { interface: "wg0", addresses: [`${TUNNEL_SOURCE}/32`], ...tunnel }, split }]);
    const peer = `ip daddr ${ADDR.peerInet4} udp dport ${ADDR.peerPort}`;
    const wireguardViaLan = await host.countPackets("H", "wglan", "postrouting", [`oifname "lan0" ${peer}`]);
    const wireguardViaTunnel = await host.countPackets("H", "wgloop", "postrouting", [`oifname "wg0" ${peer}`]);
    await host.start();
    return { host, wireguardViaLan, wireguardViaTunnel };
  } catch (err) {
    await host.destroy();
    throw err;
  }
}

/** `wg show wg0 dump`'s peer line: latest handshake (s since the epoch, 0 = never) and bytes moved. */
async function peerState(host: LeakproofHost): Promise<{ handshake: number; rx: number; tx: number; fwmark: string }> {
  const [iface, peer] = (await host.lab.wgShow("wg0")).trim().split("\n").map((l) => l.split("\t"));
  return { handshake: Number(peer![4]), rx: Number(peer![5]), tx: Number(peer![6]), fwmark: iface![3]! };
}

const where = (d: { table?: string; dev?: string; verdict: string; error?: string }) => (d.verdict === "unreachable" ? `unreachable (${d.error})` : `table ${d.table ?? "main"} dev ${d.dev}`);

async function traffic(host: LeakproofHost): Promise<string[]> {
  const results = await host.probe([
    { proto: "udp", host: ADDR.server4 },
    { proto: "tcp", host: ADDR.server4 },
    { proto: "udp", host: ADDR.lanHost4, port: DNS_PORT },
  ]);
  return results.map((r) => (r.ok ? r.saw! : `failed: ${r.error}`));
}

const t = labSuite(
  "lab: leak-proof 3, UDP and all protocols without routing loops",
  async () => {
    const [managed, unmanaged] = await setUpAll(
      [
        protocolsHost("protoudp", { protocols: ["tcp", "udp", "ipv6-icmp"], killswitch: true }, {}),
        protocolsHost("protoall", { protocols: ["all"], table: 51820, priority: 20000, ipv6: "direct" }, { manage: false, endpoints: [ADDR.peerInet4] }),
      ],
      (c) => c.host.destroy(),
    );
    return { managed, unmanaged };
  },
  async ({ managed, unmanaged }) => {
    await Promise.all([managed.host.destroy(), unmanaged.host.destroy()]);
  },
);

t.test("networkd warns about none of the files", async ({ managed, unmanaged }) => {
  assert.equal(await managed.host.networkdWarnings(), []);
  assert.equal(await unmanaged.host.networkdWarnings(), []);
});

t.test("tcp + udp, managed: wg0 marks its packets, and the mark rule sends them to main", async ({ managed: { host } }) => {
  const { fwmark, handshake } = await peerState(host);
  assert.equal(fwmark, "0x2766", "wg0's fwmark (FirewallMark=10086, the table number)");
  assert.equal(handshake, 0, "no handshake yet: the first one happens with the rules in place");
  const rules = (await host.lab.rules()).filter((r) => r.fwmark !== undefined);
  assert.equal(rules.map((r) => `${r.family} ${r.priority} fwmark ${r.fwmark} lookup ${r.table}`), ["ipv4 10084 fwmark 0x2766 lookup main", "ipv6 10084 fwmark 0x2766 lookup main"]);
  const own = await host.lab.routeGet(ADDR.peerInet4, { ipproto: "udp", dport: ADDR.peerPort, mark: 10086, tunnel: "wg0" });
  const unmarked = await host.lab.routeGet(ADDR.peerInet4, { ipproto: "udp", dport: ADDR.peerPort, tunnel: "wg0" });
  say([`managed: route get the endpoint udp with wg0's mark: ${where(own)}; without the mark (any other UDP to it): ${where(unmarked)}`]);
  assert.equal(where(own), "table main dev lan0");
  assert.equal(where(unmarked), "table 10086 dev wg0");
});

t.test("tcp + udp + ipv6-icmp, managed: ICMPv6 is captured too (IPv6 is blocked: no IPv6 tunnel address)", async ({ managed: { host } }) => {
  // networkd 252 refuses IPProtocol=ipv6-icmp and installs no rule; the generator writes 58.
  const icmp6 = await host.lab.routeGet(ADDR.server6, { ipproto: "ipv6-icmp", tunnel: "wg0" });
  const udp6 = await host.lab.routeGet(ADDR.server6, { ipproto: "udp", tunnel: "wg0" });
  say([`managed: route get ${ADDR.server6} ipproto ipv6-icmp: ${where(icmp6)}; udp: ${where(udp6)}`]);
  assert.equal(icmp6.verdict, "unreachable", JSON.stringify(icmp6));
  assert.equal(udp6.verdict, "unreachable", JSON.stringify(udp6));
});

t.test("tcp + udp, managed: UDP and TCP to the internet go through the tunnel, DNS-style UDP to the LAN direct; the handshake works", async ({ managed }) => {
  const { host } = managed;
  const before = await peerState(host);
  const seen = await traffic(host);
  const after = await peerState(host);
  const [lan, loop] = [await managed.wireguardViaLan(), await managed.wireguardViaTunnel()];
  say([
    `managed: UDP to the internet server: the server saw ${seen[0]}; TCP: ${seen[1]}; UDP to the LAN host port 53: ${seen[2]}`,
    `managed: handshake ${before.handshake} -> ${after.handshake}, transfer rx ${before.rx} -> ${after.rx}, tx ${before.tx} -> ${after.tx}; WireGuard packets via lan0 ${lan}, via wg0 ${loop}`,
  ]);
  assert.equal(seen, [TUNNEL_SOURCE, TUNNEL_SOURCE, ADDR.hostLan4]);
  assert.ok(after.handshake > 0 && after.rx > before.rx && after.tx > before.tx, JSON.stringify({ before, after }));
  assert.ok(lan > 0, "WireGuard's packets leave through lan0");
  assert.equal(loop, 0, "no WireGuard packet to the peer is routed into wg0");
});

t.test("tcp + udp, managed: a recreated wg0 handshakes again through the rules and carries UDP", async ({ managed }) => {
  const { host } = managed;
  await host.deleteTunnel("wg0");
  await host.startTunnel("wg0");
  await host.lab.waitConfigured(await host.links());
  await host.waitKernelMatchesPlan();
  assert.equal((await peerState(host)).handshake, 0, "a fresh wg0 has not handshaken yet");
  const seen = await traffic(host);
  const after = await peerState(host);
  say([`managed, wg0 recreated: UDP ${seen[0]}, TCP ${seen[1]}, LAN UDP 53 ${seen[2]}; handshake at ${after.handshake}`]);
  assert.equal(seen, [TUNNEL_SOURCE, TUNNEL_SOURCE, ADDR.hostLan4]);
  assert.ok(after.handshake > 0);
  assert.equal(await managed.wireguardViaTunnel(), 0);
});

t.test("all, unmanaged: the endpoint is thrown; every protocol to the internet goes through the tunnel, its handshake direct", async ({ unmanaged }) => {
  const { host } = unmanaged;
  const table = (await host.lab.routes(51820, "ipv4")).filter((r) => r.dst === ADDR.peerInet4);
  assert.equal(table.map((r) => r.type), ["throw"], "the peer's endpoint is thrown in table 51820");
  assert.equal((await host.lab.rules()).filter((r) => r.fwmark !== undefined), [], "an unmanaged tunnel gets no mark rule");
  const endpoint = await host.lab.routeGet(ADDR.peerInet4, { ipproto: "udp", dport: ADDR.peerPort, tunnel: "wg0" });
  const icmp = await host.lab.routeGet(ADDR.server4, { ipproto: "icmp", tunnel: "wg0" });
  const before = await peerState(host);
  const seen = await traffic(host);
  const after = await peerState(host);
  const [lan, loop] = [await unmanaged.wireguardViaLan(), await unmanaged.wireguardViaTunnel()];
  say([
    `unmanaged, all: route get the endpoint udp: ${where(endpoint)}; ICMP to the internet server: ${where(icmp)}`,
    `unmanaged, all: UDP to the internet server: the server saw ${seen[0]}; TCP: ${seen[1]}; UDP to the LAN host port 53: ${seen[2]}`,
    `unmanaged, all: handshake ${before.handshake} -> ${after.handshake}; WireGuard packets via lan0 ${lan}, via wg0 ${loop}`,
  ]);
  assert.equal(where(endpoint), "table main dev lan0");
  assert.equal(where(icmp), "table 51820 dev wg0");
  assert.equal(seen, [TUNNEL_SOURCE, TUNNEL_SOURCE, ADDR.hostLan4]);
  assert.ok(before.handshake === 0 && after.handshake > 0, JSON.stringify({ before, after }));
  assert.ok(lan > 0);
  assert.equal(loop, 0);
});

t.run();
