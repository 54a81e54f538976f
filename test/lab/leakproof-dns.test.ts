// Issue 13, DNS through the tunnel: the real systemd-resolved in H gets the
// tunnel's resolvers from networkd (DNS=, Domains=, DNSDefaultRoute= on wg0's
// .network), the lab's responders on the tunnel peer (10.253.0.1) and on the
// LAN router (192.168.50.1, H's LAN resolver on lan0) answer with addresses of
// their own and count every query. Two hosts side by side:
//   - "all": tunnel.dns = ["10.253.0.1"], every name (the default "~."), only TCP
//     captured, @local excluded (so the resolver's address is excluded), kill
//     switch: lookups go to the tunnel's resolver through the tunnel; with wg0 down
//     or deleted they fail and the LAN resolver sees nothing;
//   - "split": dns_domains = ["~corp.example"], no kill switch: names under
//     corp.example go to the tunnel's resolver, every other name to the LAN's.
// Lookups: `resolvectl query` (resolved's API), getaddrinfo through the stub at
// 127.0.0.53 (getent, as root and as a split user), and queries an application
// sends straight to a resolver over UDP and TCP (a host without resolved).

import * as assert from "uvu/assert";
import { labSuite } from "./harness.js";
import { setUpAll } from "./leakproof.js";
import { ANSWER, DnsHost, LAN_RESOLVER, resolvedUnavailable, TUNNEL_RESOLVER, type Lookup } from "./resolved.js";

const verbose = !!process.env.GEN_NETWORKD_LAB_VERBOSE;
const say = (lines: string[]) => verbose && console.log("\n" + lines.join("\n"));

const TUNNEL_SOURCE = "10.253.0.2";
const SPLIT_USER = 1000;

const allSpec = {
  version: 1,
  tunnel: { interface: "wg0", addresses: [`${TUNNEL_SOURCE}/32`], dns: [TUNNEL_RESOLVER] },
  split: { protocols: ["tcp"], killswitch: true, ipv6: "direct" },
};
const splitSpec = {
  version: 1,
  tunnel: { interface: "wg0", addresses: [`${TUNNEL_SOURCE}/32`], dns: [TUNNEL_RESOLVER], dns_domains: ["~corp.example"] },
  split: { protocols: ["tcp"], ipv6: "direct", users: [SPLIT_USER] },
};

async function dnsHost(tag: string, spec: Record<string, unknown>): Promise<DnsHost> {
  const dns = await DnsHost.create(tag);
  try {
    await dns.host.generate([spec]);
    await dns.start();
    await dns.waitLinkServers("wg0", [TUNNEL_RESOLVER]);
    await dns.waitLinkServers("lan0", [LAN_RESOLVER]);
    return dns;
  } catch (err) {
    await dns.destroy();
    throw err;
  }
}

const show = (l: Lookup) => (l.ok ? `${l.address}${l.link ? ` (link ${l.link})` : ""}` : `failed: ${l.error}`);

let counter = 0;
/** A name never asked before, so a responder's count for it is this step's alone. */
const fresh = (zone: string) => `n${++counter}-${process.pid}.${zone}`;

const t = labSuite(
  "lab: leak-proof 6, DNS through the tunnel with systemd-resolved",
  async () => {
    const [all, split] = await setUpAll([dnsHost("dnsall", allSpec), dnsHost("dnssplit", splitSpec)], (d) => d.destroy());
    return { all: all!, split: split! };
  },
  async ({ all, split }) => {
    await Promise.all([all.destroy(), split.destroy()]);
  },
  resolvedUnavailable,
);

t.test("networkd warns about none of the files; resolved lists the tunnel's resolver for wg0 and the LAN's for lan0", async ({ all, split }) => {
  assert.equal(await all.host.networkdWarnings(), []);
  assert.equal(await split.host.networkdWarnings(), []);
});

t.test('"~.": resolvectl, getaddrinfo (root and a split user) are answered by the tunnel\'s resolver; the LAN resolver sees none', async ({ all }) => {
  const names = [fresh("example.test"), fresh("example.test"), fresh("example.test")];
  const lookups = [await all.resolvectl(names[0]!), await all.getaddrinfo(names[1]!), await all.getaddrinfo(names[2]!, SPLIT_USER)];
  say(['"~.", wg0 up:', ...lookups.map((l, i) => `  ${names[i]}: ${show(l)}`), `  P saw: ${all.queries("P").join("; ")}`, `  R saw: ${all.queries("R").join("; ")}`]);
  assert.equal(lookups.map((l) => l.address), [ANSWER.tunnel.v4, ANSWER.tunnel.v4, ANSWER.tunnel.v4], JSON.stringify(lookups));
  assert.equal(lookups[0]!.link, "wg0");
  for (const name of names) {
    assert.ok(all.queries("P", name).length > 0, `${name}: the tunnel's resolver got the query`);
    assert.ok(all.queries("P", name).every((q) => q.endsWith(` from ${TUNNEL_SOURCE}`)), `${name}: it came through the tunnel: ${all.queries("P", name)}`);
    assert.equal(all.queries("R", name), [], `${name}: the LAN resolver got no query`);
  }
});

t.test('"~.", only TCP captured: an application\'s own queries to the excluded resolver, UDP and TCP, any user, go through the tunnel', async ({ all }) => {
  const names = [fresh("example.test"), fresh("example.test"), fresh("example.test")];
  const root = await all.direct([{ server: TUNNEL_RESOLVER, name: names[0]!, proto: "udp" }, { server: TUNNEL_RESOLVER, name: names[1]!, proto: "tcp" }]);
  const [asUser] = await all.direct([{ server: TUNNEL_RESOLVER, name: names[2]!, proto: "udp" }], SPLIT_USER);
  const kernel = await Promise.all(["udp", "tcp"].map((ipproto) => all.lab.routeGet(TUNNEL_RESOLVER, { ipproto, dport: 53, tunnel: "wg0" })));
  const otherPort = await all.lab.routeGet(TUNNEL_RESOLVER, { ipproto: "udp", dport: 5353, tunnel: "wg0" });
  say(["direct queries to 10.253.0.1:", ...[...root, asUser!].map((l, i) => `  ${names[i]}: ${show(l)}`), `  P saw: ${names.flatMap((n) => all.queries("P", n)).join("; ")}`]);
  assert.equal([...root, asUser!].map((l) => l.address), [ANSWER.tunnel.v4, ANSWER.tunnel.v4, ANSWER.tunnel.v4], JSON.stringify([...root, asUser]));
  assert.equal(names.map((n) => all.queries("P", n).map((q) => q.split(" ")[0])), [["udp"], ["tcp"], ["udp"]], "one query each, over the protocol sent");
  assert.ok(names.every((n) => all.queries("P", n).every((q) => q.endsWith(` from ${TUNNEL_SOURCE}`))), "from the tunnel's address");
  assert.equal(kernel.map((d) => `${d.verdict} ${d.table}`), ["tunnel 10086", "tunnel 10086"], "the kernel routes DNS to the resolver into table 10086");
  assert.equal(otherPort.verdict, "direct", "UDP to the resolver's address on another port is not DNS and follows the split (excluded: direct)");
});

t.test("split DNS: names under corp.example go to the tunnel's resolver through wg0, every other name to the LAN resolver", async ({ split }) => {
  const corp = [fresh("corp.example"), fresh("corp.example"), fresh("corp.example")];
  const other = [fresh("example.test"), fresh("example.test"), fresh("example.test")];
  const lookup = (names: string[]) => Promise.all([split.resolvectl(names[0]!), split.getaddrinfo(names[1]!), split.getaddrinfo(names[2]!, SPLIT_USER)]);
  const [corpLookups, otherLookups] = [await lookup(corp), await lookup(other)];
  say(["split DNS:", ...corpLookups.map((l, i) => `  ${corp[i]}: ${show(l)}`), ...otherLookups.map((l, i) => `  ${other[i]}: ${show(l)}`), `  P saw: ${split.queries("P").join("; ")}`, `  R saw: ${split.queries("R").join("; ")}`]);
  assert.equal(corpLookups.map((l) => l.address), [ANSWER.tunnel.v4, ANSWER.tunnel.v4, ANSWER.tunnel.v4], JSON.stringify(corpLookups));
  assert.equal(otherLookups.map((l) => l.address), [ANSWER.lan.v4, ANSWER.lan.v4, ANSWER.lan.v4], JSON.stringify(otherLookups));
  assert.equal([corpLookups[0]!.link, otherLookups[0]!.link], ["wg0", "lan0"]);
  for (const name of corp) {
    assert.ok(split.queries("P", name).length > 0 && split.queries("P", name).every((q) => q.endsWith(` from ${TUNNEL_SOURCE}`)), `${name}: through the tunnel: ${split.queries("P", name)}`);
    assert.equal(split.queries("R", name), [], `${name}: the LAN resolver never saw it`);
  }
  for (const name of other) {
    assert.equal(split.queries("P", name), [], `${name}: the tunnel's resolver never saw it`);
    assert.ok(split.queries("R", name).length > 0, `${name}: the LAN resolver answered it`);
  }
});

for (const step of ["down", "deleted"] as const) {
  t.test(`"~." with the kill switch, wg0 ${step}: every lookup fails, the LAN resolver sees none`, async ({ all }) => {
    if (step === "down") await all.lab.ip("H", ["link", "set", "wg0", "down"]);
    else await all.host.deleteTunnel("wg0");
    const names = [fresh("example.test"), fresh("example.test"), fresh("example.test"), fresh("example.test")];
    const lookups = [await all.resolvectl(names[0]!), await all.getaddrinfo(names[1]!), ...(await all.direct([{ server: TUNNEL_RESOLVER, name: names[2]!, proto: "udp" }, { server: TUNNEL_RESOLVER, name: names[3]!, proto: "tcp" }]))];
    say([`"~.", wg0 ${step}:`, ...lookups.map((l, i) => `  ${names[i]}: ${show(l)}`), `  R saw: ${all.queries("R").join("; ")}`, `  resolvectl dns: ${await all.resolvectlRun(["dns"])}`]);
    assert.ok(lookups.every((l) => !l.ok), JSON.stringify(lookups));
    assert.equal(all.queries("R"), [], "the LAN resolver got no query at all");
    assert.ok(names.every((n) => all.queries("P", n).length === 0), "nothing reached the tunnel's resolver either");
  });
}

t.test('"~." with the kill switch, wg0 recreated: lookups go to the tunnel\'s resolver through it again', async ({ all }) => {
  await all.host.startTunnel("wg0");
  await all.lab.waitConfigured(await all.host.links());
  await all.waitLinkServers("wg0", [TUNNEL_RESOLVER]);
  const names = [fresh("example.test"), fresh("example.test")];
  const lookups = [await all.resolvectl(names[0]!), await all.getaddrinfo(names[1]!)];
  assert.equal(lookups.map((l) => l.address), [ANSWER.tunnel.v4, ANSWER.tunnel.v4], JSON.stringify(lookups));
  assert.ok(names.every((n) => all.queries("P", n).length > 0 && all.queries("P", n).every((q) => q.endsWith(` from ${TUNNEL_SOURCE}`))), "through the tunnel");
  assert.equal(all.queries("R"), [], "the LAN resolver never got a query from this host");
});

t.test("doctor: resolved lists the tunnel's resolver for wg0 and globally (kill switch), H's /etc/resolv.conf is its stub", async ({ all, split }) => {
  const [allCheck, splitCheck] = [await all.doctorDns(), await split.doctorDns()];
  say([`doctor, "~.": ${allCheck.status} ${allCheck.summary}`, `doctor, split: ${splitCheck.status} ${splitCheck.summary}`]);
  assert.is(allCheck.status, "pass", JSON.stringify(allCheck));
  assert.match(allCheck.summary, /lists 10\.253\.0\.1 for wg0 and globally \(kill switch\)/);
  assert.is(splitCheck.status, "pass", JSON.stringify(splitCheck));
});

t.test("doctor: with systemd-resolved stopped, nothing uses tunnel.dns, and it says how to fix that", async ({ split }) => {
  await split.resolved!.stop();
  const check = await split.doctorDns();
  say([`doctor, resolved stopped: ${check.status} ${check.summary}`, `  ${check.details.join("\n  ")}`, `  fix: ${check.fix}`]);
  assert.is(check.status, "fail", JSON.stringify(check));
  assert.match(check.summary, /^nothing uses tunnel\.dns: systemd-resolved does not answer/);
  assert.match(check.fix!, /^systemctl enable --now systemd-resolved, .*nameserver 10\.253\.0\.1/);
});

t.run();
