// The planner's decisions, checked on the model (the lab checks them on the kernel).
import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { sectionsOf, type Plan, type Section, type Unit } from "../src/model.js";
import { buildPlan, PlanError, ROUTES_PER_NETWORK, type PlanLists } from "../src/plan.js";
import { AddressSet, containsAddress, formatPrefix, type Family, type Prefix } from "../src/prefix.js";
import { prefixOf } from "./prefix-of.js";
import { validateSpec } from "../src/spec.js";

const KEY = "4kQT3smJgD94joC+o+whDz6zEdg42kZIryzw0Rw2w24=";

function plan(split: Record<string, unknown>, tunnel: Record<string, unknown> = {}, lists: PlanLists = {}): Plan {
  const result = validateSpec({
    version: 1,
    tunnel: {
      interface: "wg0",
      addresses: ["10.253.0.2/32"],
      private_key_file: "/etc/systemd/network/wg0.key",
      peers: [{ public_key: KEY, endpoint: "198.51.100.7:51820", allowed_ips: ["0.0.0.0/0"] }],
      ...tunnel,
    },
    split,
  });
  if (!result.ok) throw new Error(result.problems.map((p) => `${p.path}: ${p.message}`).join("\n"));
  return buildPlan(result.spec, { prefix: "50", lists });
}

const unit = (p: Plan, fileName: string): Unit => {
  const found = p.units.find((u) => u.fileName === fileName);
  if (!found) throw new Error(`no unit ${fileName} in ${p.units.map((u) => u.fileName).join(", ")}`);
  return found;
};
const value = (s: Section, key: string) => s.entries.find((e) => e.key === key)?.value;
const named = (u: Unit, name: string) => sectionsOf(u).filter((s) => s.name === name);
const rules = (p: Plan) => named(unit(p, "50-wg0-split.network"), "RoutingPolicyRule").map((s) => s.entries.map((e) => `${e.key}=${e.value}`).join(" "));

test("seed: the path on wg0, the policy on the anchor, rules at priority-1, priority and after", () => {
  const p = plan({});
  assert.equal(p.units.map((u) => u.fileName), ["50-wg0.netdev", "50-wg0.network", "50-wg0-split.netdev", "50-wg0-split.network", "50-wg0.conf"]);
  const wg0Routes = named(unit(p, "50-wg0.network"), "Route");
  assert.equal(wg0Routes.map((s) => [value(s, "Destination"), value(s, "PreferredSource"), value(s, "Type")]), [["0.0.0.0/0", "10.253.0.2", undefined]]);
  assert.equal(rules(p), [
    "Table=main SuppressPrefixLength=0 IPProtocol=tcp Family=ipv4 Priority=10085",
    "Table=10086 From=0.0.0.0/32 IPProtocol=tcp Family=ipv4 Priority=10086",
    "Table=10086 From=10.253.0.2/32 IPProtocol=tcp Family=ipv4 Priority=10086",
    "Table=main IncomingInterface=lo IPProtocol=tcp Family=ipv4 Priority=10088",
    "Table=10086 IPProtocol=tcp Family=ipv4 Priority=10089",
    // Blocked IPv6 TCP: lookups with a source and a source port (replies) go to main, the rest stays blocked.
    "Table=main SuppressPrefixLength=0 IPProtocol=tcp Family=ipv6 Priority=10085",
    "Table=main From=::/1 IncomingInterface=lo SourcePort=1-65534 IPProtocol=tcp Family=ipv6 Priority=10088",
    "Table=main From=8000::/1 IncomingInterface=lo SourcePort=1-65534 IPProtocol=tcp Family=ipv6 Priority=10088",
    "Table=10086 IPProtocol=tcp Family=ipv6 Priority=10089",
  ]);
  assert.equal(p.notes.length, 1);
  assert.match(p.notes[0]!, /^ipv6: "block"/);
});

test("direct_connected = false drops the suppress rules; ipv6 = direct drops IPv6", () => {
  assert.equal(rules(plan({ direct_connected: false, ipv6: "direct", inbound: "capture" })), ["Table=10086 IPProtocol=tcp Family=ipv4 Priority=10086"]);
});

test("UDP capture: the tunnel marks its packets and a rule at priority-2 sends them to main", () => {
  const p = plan({ protocols: ["tcp", "udp"], ipv6: "direct", inbound: "capture" });
  const wireguard = named(unit(p, "50-wg0.netdev"), "WireGuard")[0]!;
  assert.is(value(wireguard, "FirewallMark"), 10086);
  assert.is(rules(p)[0], "Table=main FirewallMark=10086 Family=ipv4 Priority=10084");
  assert.is(rules(p).length, 5);
});

test("no mark and no mark rule while only TCP is captured", () => {
  const p = plan({ ipv6: "direct" });
  assert.is(value(named(unit(p, "50-wg0.netdev"), "WireGuard")[0]!, "FirewallMark"), undefined);
  assert.not.ok(rules(p).some((r) => r.includes("FirewallMark")));
});

test("icmp gets IPv4 rules only, ipv6-icmp IPv6 rules only, all gets no IPProtocol", () => {
  assert.ok(rules(plan({ protocols: ["icmp"], direct_connected: false })).every((r) => r.includes("Family=ipv4")));
  assert.ok(rules(plan({ protocols: ["ipv6-icmp"], direct_connected: false })).every((r) => r.includes("Family=ipv6")));
  assert.not.ok(rules(plan({ protocols: ["all"] })).some((r) => r.includes("IPProtocol")));
});

test("ipv6-icmp is written as IPProtocol=58: networkd 252 refuses the name and would install no rule", () => {
  assert.equal(rules(plan({ protocols: ["ipv6-icmp"], direct_connected: false, inbound: "capture" })), ["Table=10086 IPProtocol=58 Family=ipv6 Priority=10086"]);
});

test("users × ports × sources become selectors of every rule pair", () => {
  const r = rules(plan({ users: [1000, "2000-2999"], ports: [443], sources: "local", ipv6: "direct", inbound: "capture" }));
  assert.equal(r, [
    "Table=main SuppressPrefixLength=0 IncomingInterface=lo User=1000 IPProtocol=tcp DestinationPort=443 Family=ipv4 Priority=10085",
    "Table=10086 IncomingInterface=lo User=1000 IPProtocol=tcp DestinationPort=443 Family=ipv4 Priority=10086",
    "Table=main SuppressPrefixLength=0 IncomingInterface=lo User=2000-2999 IPProtocol=tcp DestinationPort=443 Family=ipv4 Priority=10085",
    "Table=10086 IncomingInterface=lo User=2000-2999 IPProtocol=tcp DestinationPort=443 Family=ipv4 Priority=10086",
  ]);
});

test("inbound = direct: capture rules per source (unspecified, each tunnel address), then this host's other sources direct, then forwarded", () => {
  const r = rules(plan({ ipv6: "tunnel", direct_connected: false }, { addresses: ["10.253.0.2/32", "10.253.0.3/24", "fd42::2/128"] }));
  assert.equal(r, [
    "Table=10086 From=0.0.0.0/32 IPProtocol=tcp Family=ipv4 Priority=10086",
    "Table=10086 From=10.253.0.2/32 IPProtocol=tcp Family=ipv4 Priority=10086",
    "Table=10086 From=10.253.0.3/32 IPProtocol=tcp Family=ipv4 Priority=10086",
    "Table=main IncomingInterface=lo IPProtocol=tcp Family=ipv4 Priority=10088",
    "Table=10086 IPProtocol=tcp Family=ipv4 Priority=10089",
    // IPv6: a rule's source prefix never matches a lookup without a source, so the source-bound ones go to main and the rest is captured after.
    "Table=10086 From=fd42::2/128 IPProtocol=tcp Family=ipv6 Priority=10086",
    "Table=main From=::/1 IncomingInterface=lo IPProtocol=tcp Family=ipv6 Priority=10088",
    "Table=main From=8000::/1 IncomingInterface=lo IPProtocol=tcp Family=ipv6 Priority=10088",
    "Table=10086 IPProtocol=tcp Family=ipv6 Priority=10089",
  ]);
});

test("inbound = direct with sources = local: no rules after the capture rules (forwarded traffic is not captured at all)", () => {
  assert.equal(rules(plan({ sources: "local", ipv6: "direct", direct_connected: false })), [
    "Table=10086 From=0.0.0.0/32 IncomingInterface=lo IPProtocol=tcp Family=ipv4 Priority=10086",
    "Table=10086 From=10.253.0.2/32 IncomingInterface=lo IPProtocol=tcp Family=ipv4 Priority=10086",
  ]);
});

test("ipv6 = block, inbound = direct: TCP lookups with a source port (replies) go to main, UDP stays captured from every source", () => {
  const v6 = (r: string[]) => r.filter((x) => x.includes("Family=ipv6"));
  assert.equal(v6(rules(plan({ protocols: ["tcp", "udp"], direct_connected: false, ipv6: "block" }))), [
    "Table=main FirewallMark=10086 Family=ipv6 Priority=10084",
    "Table=main From=::/1 IncomingInterface=lo SourcePort=1-65534 IPProtocol=tcp Family=ipv6 Priority=10088",
    "Table=main From=8000::/1 IncomingInterface=lo SourcePort=1-65534 IPProtocol=tcp Family=ipv6 Priority=10088",
    "Table=10086 IPProtocol=tcp Family=ipv6 Priority=10089",
    "Table=10086 IPProtocol=udp Family=ipv6 Priority=10086",
  ]);
  // From this host only: nothing is forwarded, so the rule needs no IncomingInterface of its own.
  assert.equal(v6(rules(plan({ direct_connected: false, ipv6: "block", sources: "local" }))), [
    "Table=main From=::/1 SourcePort=1-65534 IncomingInterface=lo IPProtocol=tcp Family=ipv6 Priority=10088",
    "Table=main From=8000::/1 SourcePort=1-65534 IncomingInterface=lo IPProtocol=tcp Family=ipv6 Priority=10088",
    "Table=10086 IncomingInterface=lo IPProtocol=tcp Family=ipv6 Priority=10089",
  ]);
  assert.equal(v6(rules(plan({ direct_connected: false, ipv6: "block", inbound: "capture" }))), ["Table=10086 IPProtocol=tcp Family=ipv6 Priority=10086"]);
});

test("inbound = direct with the kill switch: IPv6 source-bound lookups meet only the kill switch's unreachable answer (priority+1)", () => {
  const r = rules(plan({ killswitch: true, sources: "local", direct_connected: false }, { addresses: ["10.253.0.2/32", "fd42::2/128"] }));
  assert.equal(r, [
    "Table=10086 From=0.0.0.0/32 IncomingInterface=lo IPProtocol=tcp Family=ipv4 Priority=10086",
    "Table=10086 From=10.253.0.2/32 IncomingInterface=lo IPProtocol=tcp Family=ipv4 Priority=10086",
    "Table=10086 From=fd42::2/128 IncomingInterface=lo IPProtocol=tcp Family=ipv6 Priority=10086",
    "Table=10086 SuppressPrefixLength=128 From=::/1 IncomingInterface=lo IPProtocol=tcp Family=ipv6 Priority=10087",
    "Table=10086 SuppressPrefixLength=128 From=8000::/1 IncomingInterface=lo IPProtocol=tcp Family=ipv6 Priority=10087",
    "Table=main From=::/1 IncomingInterface=lo IPProtocol=tcp Family=ipv6 Priority=10088",
    "Table=main From=8000::/1 IncomingInterface=lo IPProtocol=tcp Family=ipv6 Priority=10088",
    "Table=10086 IncomingInterface=lo IPProtocol=tcp Family=ipv6 Priority=10089",
  ]);
});

test("inbound = capture: one capture rule per selector set, from every source (the blog's rule)", () => {
  assert.equal(rules(plan({ inbound: "capture", ipv6: "direct", protocols: ["tcp", "udp"] })), [
    "Table=main FirewallMark=10086 Family=ipv4 Priority=10084",
    "Table=main SuppressPrefixLength=0 IPProtocol=tcp Family=ipv4 Priority=10085",
    "Table=10086 IPProtocol=tcp Family=ipv4 Priority=10086",
    "Table=main SuppressPrefixLength=0 IPProtocol=udp Family=ipv4 Priority=10085",
    "Table=10086 IPProtocol=udp Family=ipv4 Priority=10086",
  ]);
});

test("kill switch: an unreachable route of the highest metric on the anchor, per captured family", () => {
  const p = plan({ killswitch: true }, { addresses: ["10.253.0.2/32", "fd42::2/128"] });
  const lastResort = named(unit(p, "50-wg0-split.network"), "Route").filter((s) => value(s, "Metric") === 4294967295);
  assert.equal(lastResort.map((s) => [value(s, "Type"), value(s, "Destination")]), [["unreachable", "0.0.0.0/0"], ["unreachable", "::/0"]]);
  assert.equal(named(unit(p, "50-wg0.network"), "Route").map((s) => value(s, "Destination")), ["0.0.0.0/0", "::/0"]);
});

test("tunnel.dns: DNS=, Domains=~. and DNSDefaultRoute=true on wg0; a UDP and a TCP port 53 rule per resolver, for every user, at priority-2", () => {
  const p = plan({ users: [1000], ipv6: "direct" }, { dns: ["10.253.0.1"] });
  const network = named(unit(p, "50-wg0.network"), "Network")[0]!;
  assert.equal(network.entries.map((e) => `${e.key}=${e.value}`), ["Address=10.253.0.2/32", "DNS=10.253.0.1", "Domains=~.", "DNSDefaultRoute=true"]);
  assert.equal(rules(p).slice(0, 2), [
    "Table=10086 To=10.253.0.1/32 IPProtocol=udp DestinationPort=53 Priority=10084",
    "Table=10086 To=10.253.0.1/32 IPProtocol=tcp DestinationPort=53 Priority=10084",
  ]);
  // The host route beats the throw of 10.0.0.0/8 (@local excludes the resolver's address).
  assert.equal(named(unit(p, "50-wg0.network"), "Route").map((s) => value(s, "Destination")), ["0.0.0.0/0", "10.253.0.1/32"]);
  assert.not.ok(p.units.some((u) => u.kind === "resolved-conf"), "no kill switch, no resolved drop-in");
});

test("tunnel.dns with split domains: DNSDefaultRoute=false, the domains on one Domains= line", () => {
  const p = plan({ ipv6: "direct", killswitch: true }, { dns: ["10.253.0.1"], dns_domains: ["~corp.example", "lab.example"] });
  const network = named(unit(p, "50-wg0.network"), "Network")[0]!;
  assert.equal([value(network, "Domains"), value(network, "DNSDefaultRoute")], ["~corp.example lab.example", false]);
  assert.not.ok(p.units.some((u) => u.kind === "resolved-conf"), "a global resolver would take every name, so split domains get no drop-in");
});

test('tunnel.dns, "~." and the kill switch: unreachable host routes on the anchor and the resolvers as resolved\'s global servers', () => {
  const p = plan({ killswitch: true }, { addresses: ["10.253.0.2/32", "fd42::2/128"], dns: ["10.253.0.1", "fd42::1"] });
  const unreachable = named(unit(p, "50-wg0-split.network"), "Route").filter((s) => value(s, "Type") === "unreachable" && value(s, "Metric") === 4294967295);
  assert.equal(unreachable.map((s) => value(s, "Destination")), ["0.0.0.0/0", "::/0", "10.253.0.1/32", "fd42::1/128"]);
  const dropIn = unit(p, "50-wg0-dns.conf");
  assert.is(dropIn.kind, "resolved-conf");
  assert.equal(sectionsOf(dropIn).map((s) => [s.name, s.entries.map((e) => `${e.key}=${e.value}`)]), [["Resolve", ["DNS=10.253.0.1", "DNS=fd42::1", "Domains=~."]]]);
});

test("unmanaged tunnel capturing UDP: its endpoints are thrown, no mark rule", () => {
  const p = plan({ protocols: ["all"], ipv6: "direct" }, { manage: false, private_key_file: undefined, peers: undefined, endpoints: ["192.0.2.44"] });
  assert.not.ok(p.units.some((u) => u.kind === "netdev" && u.fileName === "50-wg0.netdev"));
  const throws = named(unit(p, "50-wg0-split.network"), "Route").map((s) => value(s, "Destination"));
  assert.ok(throws.includes("192.0.2.44/32"));
  assert.not.ok(rules(p).some((r) => r.includes("FirewallMark")));
});

/** N non-adjacent IPv4 /24s from 1.0.0.0 on: exactly N prefixes in any minimal cover. */
const disjoint24s = (n: number): AddressSet =>
  AddressSet.of(Array.from({ length: n }, (_, i): Prefix => ({ family: 4, network: BigInt(0x01000000 + i * 512), length: 24 })));
const destinations = (u: Unit) => named(u, "Route").map((s) => String(value(s, "Destination")));

test("a long exclusion list: its throws spread over anchors of at most ROUTES_PER_NETWORK routes, in order, rules on the first only", () => {
  const list = disjoint24s(2 * ROUTES_PER_NETWORK + 5);
  const p = plan({ exclude: [], exclude_files: ["list.txt"], ipv6: "direct" }, {}, { exclude: list });
  const anchors = ["wg0-split", "wg0-split-2", "wg0-split-3"];
  assert.equal(p.units.map((u) => u.fileName), ["50-wg0.netdev", "50-wg0.network", ...anchors.flatMap((a) => [`50-${a}.netdev`, `50-${a}.network`]), "50-wg0.conf"]);
  const networks = anchors.map((a) => unit(p, `50-${a}.network`));
  assert.equal(networks.map((u) => named(u, "Route").length), [ROUTES_PER_NETWORK, ROUTES_PER_NETWORK, 5]);
  assert.equal(networks.flatMap(destinations), list.cidrs());
  assert.equal(networks.map((u) => named(u, "RoutingPolicyRule").length > 0), [true, false, false]);
  assert.equal(networks.map((u) => value(named(u, "Match")[0]!, "Name")), anchors);
  assert.equal(anchors.map((a) => value(named(unit(p, `50-${a}.netdev`), "NetDev")[0]!, "Name")), anchors);
  assert.match(networks[1]!.comment.join(" "), /Part 2 of 3 .* the rules are on wg0-split/);
  assert.ok(p.notes.some((n) => /16006 routes, spread over 3 anchor links/.test(n)), p.notes.join("\n"));
  assert.is(p.routes, p.units.flatMap((u) => named(u, "Route")).length, "the plan counts every route it configures");
  assert.is(p.routes, 16006);
});

test("captured prefixes too many for the tunnel's own .network: it stays under the limit, the rest on anchors", () => {
  for (const n of [ROUTES_PER_NETWORK + 1, 3 * ROUTES_PER_NETWORK]) {
    const p = plan({ include: [], include_files: ["list.txt"], exclude: [], ipv6: "direct" }, {}, { include: disjoint24s(n) });
    const networks = p.units.filter((u) => u.kind === "network");
    for (const u of networks) assert.ok(named(u, "Route").length <= ROUTES_PER_NETWORK, `${n}: ${u.fileName} holds ${named(u, "Route").length} routes`);
    assert.ok(networks.length > 2, `${n}: the throws spread over anchors`);
    // The note says what the limit cost, within what bound of the best table under it.
    const note = p.notes.find((line) => line.includes(" would do, since "));
    const bound = /^table 10086: (\d+) routes where (\d+) would do, since wg0's \.network holds at most 8000 routes through the tunnel \(this table uses (\d+)\); no table within that limit has fewer than (\d+)$/.exec(note ?? "");
    assert.ok(bound, p.notes.join("\n"));
    const [routes, unlimited, tunnelled, atLeast] = bound!.slice(1).map(Number) as [number, number, number, number];
    assert.is(routes, p.routes);
    assert.is(unlimited, n, "without the limit: one route through the tunnel per captured /24");
    assert.ok(tunnelled <= ROUTES_PER_NETWORK && unlimited <= atLeast && atLeast <= routes, note);
  }
});

test("anchor names that would pass 15 bytes are refused on split.anchor, with the longest name that fits", () => {
  const list = disjoint24s(ROUTES_PER_NETWORK + 1);
  assert.throws(
    () => plan({ exclude: [], exclude_files: ["list.txt"], ipv6: "direct", anchor: "split-anchor-15" }, {}, { exclude: list }),
    (error: unknown) => error instanceof PlanError && error.path === "split.anchor" && /need 2 anchor links.*at most 13 bytes/.test(error.message),
  );
  assert.is(plan({ exclude: [], exclude_files: ["list.txt"], ipv6: "direct", anchor: "split-anchor1" }, {}, { exclude: list }).units.filter((u) => u.kind === "netdev").length, 3);
});

// The table's meaning, read back from the plan: longest prefix match among its routes;
// a throw, or no route at all, sends the lookup on to the next rule (not captured).
function capturedByTable(p: Plan, family: Family, address: bigint): boolean {
  const routes = p.units
    .filter((u) => u.kind === "network")
    .flatMap((u) => named(u, "Route"))
    .map((s) => ({ prefix: prefixOf(String(value(s, "Destination"))), type: String(value(s, "Type") ?? "unicast") }))
    .filter((r) => r.prefix.family === family && containsAddress(r.prefix, family, address));
  if (routes.length === 0) return false;
  const best = routes.reduce((a, b) => (b.prefix.length > a.prefix.length ? b : a));
  return best.type !== "throw";
}

const v4prefix = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 4, max: 30 })).map(([n, len]) => {
  const network = (BigInt(n) >> BigInt(32 - len)) << BigInt(32 - len);
  return formatPrefix({ family: 4, network, length: len });
});

test("property: whichever form the planner picks, the table captures exactly include − exclude", () => {
  fc.assert(
    fc.property(fc.array(v4prefix, { minLength: 1, maxLength: 6 }), fc.array(v4prefix, { maxLength: 12 }), fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 40, maxLength: 40 }), (include, exclude, probes) => {
      const inc = include.map(prefixOf);
      const exc = exclude.map(prefixOf);
      let p: Plan;
      try {
        p = plan({ include, exclude, ipv6: "direct" });
      } catch (error) {
        // Only an empty capture may be refused.
        assert.match((error as Error).message, /leaves no IPv4 destination/);
        return;
      }
      // Probe random addresses and the edges of every prefix involved.
      const edges = [...inc, ...exc].flatMap((q) => [q.network, q.network + (1n << BigInt(32 - q.length)) - 1n, q.network - 1n, q.network + (1n << BigInt(32 - q.length))]);
      for (const address of [...probes.map(BigInt), ...edges].filter((a) => a >= 0n && a <= 0xffffffffn)) {
        const expected = inc.some((q) => containsAddress(q, 4, address)) && !exc.some((q) => containsAddress(q, 4, address));
        assert.is(capturedByTable(p, 4, address), expected, `address ${address}`);
      }
    }),
    { numRuns: 200 },
  );
});

// WireGuard drops a packet whose destination no peer's AllowedIPs holds ("Required key not available").
const peer = (allowed_ips: string[]) => ({ peers: [{ public_key: KEY, endpoint: "198.51.100.7:51820", allowed_ips }] });
const allowedIpsNotes = (p: Plan) => p.notes.filter((n) => n.startsWith("tunnel.peers:"));

test("item 16: captured destinations no peer's allowed_ips holds: a note naming the first few per family, the count, and the fix", () => {
  const narrow = plan({}, peer(["10.253.0.0/24"]));
  assert.equal(allowedIpsNotes(narrow).length, 1, narrow.notes.join("\n"));
  const note = allowedIpsNotes(narrow)[0]!;
  assert.match(note, /no peer's allowed_ips holds these captured destinations, so WireGuard drops what is sent to them \("Required key not available"\): IPv4 0\.0\.0\.0\/5, 8\.0\.0\.0\/7, 11\.0\.0\.0\/8 and \d+ more prefixes; add them to a peer's allowed_ips \(e\.g\. "0\.0\.0\.0\/0"\)$/);
  assert.not.match(note, /IPv6/, "blocked IPv6 never enters the tunnel");
  // The seed's peer (0.0.0.0/0, ::/0), and 0.0.0.0/0 alone with IPv6 blocked or direct: nothing to say.
  assert.equal(allowedIpsNotes(plan({}, peer(["0.0.0.0/0", "::/0"]))), []);
  assert.equal(allowedIpsNotes(plan({})), []);
  assert.equal(allowedIpsNotes(plan({ ipv6: "direct" })), []);
});

test("item 16: allowed_ips against IPv6 through the tunnel, a prefix-list capture and the resolvers; none for an unmanaged tunnel", () => {
  const v6 = allowedIpsNotes(plan({}, { addresses: ["10.253.0.2/32", "fd00:253::2/128"] }));
  assert.equal(v6.length, 1);
  assert.match(v6[0]!, /: IPv6 ::\/128, ::2\/127, ::4\/126 and \d+ more prefixes; .*\(e\.g\. "::\/0"\)$/);
  const listed = allowedIpsNotes(plan({ include: ["203.0.113.0/24"] }, { ...peer(["203.0.113.0/25"]), dns: ["10.253.0.1"] }));
  assert.equal(listed.length, 1);
  assert.match(listed[0]!, /: IPv4 10\.253\.0\.1\/32, 203\.0\.113\.128\/25; /, "the resolver is reached through the tunnel although @local excludes it");
  assert.equal(allowedIpsNotes(plan({}, { manage: false, private_key_file: undefined, peers: undefined })), []);
});

test.run();
