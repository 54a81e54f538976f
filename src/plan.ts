// Plan: from a validated spec to the format-neutral model of what to emit.
//
// This is where every decision is made (which routes, which rules, in which
// order, on which link, with which comments); renderers only spell the result.
// The routing design follows the blog's working script, extended where it falls short:
//
//   table T:   the tunnel path (dev wg0 src ADDR) and throws, so excluded destinations
//              fall back to the next rule (main): the fewest routes that give every
//              address its verdict under longest-prefix match (src/lpm-table.ts), e.g.
//              the default through wg0 and a throw per excluded prefix, or routes that
//              nest (10.1.0.0/16 dev wg0 inside throw 10.0.0.0/8)
//   prio P-2:  packets carrying the tunnel's firewall mark → main (only when UDP is
//              captured: the tunnel's own encrypted packets must not loop into it)
//   prio P-1:  selectors → main, suppress_prefixlength 0: whatever main knows more
//              specifically than its default route (connected LANs, docker) stays direct
//   prio P:    selectors → T (the blog's `ip rule add ipproto tcp table 10086`); with
//              split.inbound = "direct" only lookups without a source (IPv4) and from the
//              tunnel's own addresses, so replies to connections that came in on another
//              link stay there (see inboundRules), followed by
//   prio P+1:  IPv6 with the kill switch: selectors from this host's other addresses → T,
//              suppress_prefixlength 128 (only the kill switch's unreachable answer counts)
//   prio P+2:  selectors from this host's other addresses → main
//   prio P+3:  selectors → T: IPv6 lookups without a source; forwarded traffic (sources = "all")
//
// Only the path (routes through the tunnel) is configured on the tunnel's own link.
// The policy (rules, throws, unreachable routes) lives on the anchor, an always-present
// port-less bridge: networkd removes a link's routes and rules when the link goes
// down, so policy kept on wg0 would vanish with the tunnel, and the kill switch with it.
//
// networkd applies at most 8,192 static routes per .network file (ROUTES_PER_NETWORK below),
// so which routes the table holds (tableRoutes) and which file carries them (carryPolicy)
// are separate steps: policy routes beyond one file's share go to further anchors, each a
// port-less bridge of its own; the tunnel's link cannot be split, so its share is a limit
// the table's form must respect.

import { createHash } from "node:crypto";
import { entry, section, sectionSeries, type Entry, type Plan, type Section, type SectionSeries, type TextSequence, type Unit } from "./model.js";
import { cheapestTables, THROW, TUNNEL, UNREACHABLE, type LpmTable, type RouteKind, type TableMode } from "./lpm-table.js";
import { AddressSet, parsePrefix, type Family, type Prefix } from "./prefix.js";
import { namedSet } from "./named-sets.js";
import { addressFamily, ALL_PROTOCOLS, anchorName, capturesTunnelPackets, dnsDomains, tunnelFwmark, type Spec } from "./spec.js";

/** The contents of split.include_files and split.exclude_files, read by the caller (planning does no I/O). */
export interface PlanLists {
  readonly include?: AddressSet;
  readonly exclude?: AddressSet;
}

export interface PlanOptions {
  /** Two-digit file name prefix that orders our files among others in the directory. */
  readonly prefix: string;
  readonly lists?: PlanLists;
}

export class PlanError extends Error {
  constructor(readonly path: string, message: string) {
    super(message);
  }
}

const FAMILY_NAME: Record<Family, "ipv4" | "ipv6"> = { 4: "ipv4", 6: "ipv6" };
const LABEL: Record<Family, string> = { 4: "IPv4", 6: "IPv6" };
/** The kill switch's unreachable routes lose to any real route: the highest metric there is. */
const LAST_RESORT_METRIC = 4294967295;
/** DNS, over UDP and over TCP (long answers, and resolvers falling back to it). */
const DNS_PORT = 53;
const DNS_PROTOCOLS = ["udp", "tcp"] as const;

type Ipv6Policy = NonNullable<Spec["split"]["ipv6"]>;
type Protocol = Spec["split"]["protocols"][number];

/** What the split does with one address family: where captured traffic goes, and which destinations. */
interface FamilyRoute {
  readonly family: Family;
  /** "tunnel": through the interface from `source`; "unreachable": captured traffic fails fast. */
  readonly target: { kind: "tunnel"; source: string } | { kind: "unreachable" };
  /** The destinations captured into the table (this family only). */
  readonly captured: AddressSet;
}

/**
 * How many static routes one .network file may hold, on every networkd version.
 *
 * networkd (src/network/networkd-route.c, route_new_static()) refuses a file's routes past
 * routes_max() = max(4096, net.ipv4.route.max_size) + max(4096, net.ipv6.route.max_size), where
 * the kernel's "no limit" value 2147483647 counts as 4096 (for IPv6 since 257; checked in the
 * sources of 252, 254 and 257) and net.ipv4.route.max_size exists only in the initial network
 * namespace. That is 8,192 on 257 and later, and on every version with a kernel before 6.3
 * (IPv6 default 4096); the rest are dropped with "Failed to allocate route, ignoring assignment:
 * Argument list too long". 252 also holds back a link's unicast route while the link has that
 * many routes, the kernel's own (local and multicast routes of its addresses) included: the
 * 192 kept free here are for those.
 */
export const ROUTES_PER_NETWORK = 8000;

/**
 * networkd 252 and 254 send every ready request at once, and their netlink socket takes at most
 * 65,535 outstanding replies (sd-netlink's REPLY_CALLBACKS_MAX): past that a link fails with
 * "Failed to configure route: Numerical result out of range", however the routes are spread over
 * files. 257 sends them 128 at a time.
 */
export const ROUTES_AT_ONCE_OLD_NETWORKD = 65_000;
/** The first networkd version read to send route requests in batches (128 replies outstanding at most). */
export const BATCHING_NETWORKD = 257;

/** Routes of the split table, by the kind of link that must carry them. */
interface TableRoutes {
  /** Routes through the tunnel: on the tunnel's link, gone when it goes. */
  readonly path: SectionSeries[];
  /** Throws and unreachable routes: on anchors, always there. */
  readonly policy: SectionSeries[];
}

/**
 * sha256 of the spec in canonical form (keys sorted, editor-only `$schema` dropped) and of
 * the addresses its prefix list files hold, so the header changes when a list does.
 */
export function specHash(spec: Spec, lists: PlanLists = {}): string {
  const canonical = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(canonical);
    if (value !== null && typeof value === "object") {
      return Object.fromEntries(
        Object.keys(value)
          .filter((key) => key !== "$schema")
          .sort()
          .map((key) => [key, canonical((value as Record<string, unknown>)[key])]),
      );
    }
    return value;
  };
  const hash = createHash("sha256").update(JSON.stringify(canonical(spec)));
  for (const [name, set] of Object.entries(lists).sort()) {
    hash.update(`\n${name}:`);
    set?.updateHash(hash);
  }
  return hash.digest("hex");
}

function expand(items: readonly string[]): Prefix[] {
  return items.flatMap((item) =>
    (namedSet(item) ?? [item]).map((text) => {
      const parsed = parsePrefix(text, { bareAddress: true });
      if (!parsed.ok) throw new Error(`validated prefix ${text} does not parse: ${parsed.message}`);
      return parsed.value;
    }),
  );
}

function chooseIpv6(spec: Spec): { policy: Ipv6Policy; note?: string } {
  if (spec.split.ipv6) return { policy: spec.split.ipv6 };
  const hasV6 = spec.tunnel.addresses.some((a) => addressFamily(a) === 6);
  return hasV6
    ? { policy: "tunnel", note: 'ipv6: "tunnel" (default: the tunnel has an IPv6 address, so IPv6 is split like IPv4)' }
    : {
        policy: "block",
        note: 'ipv6: "block" (default: the tunnel has no IPv6 address, so captured IPv6 fails fast instead of bypassing the tunnel; set split.ipv6 = "direct" to leave IPv6 alone)',
      };
}

/** An unmanaged tunnel cannot mark its packets, so with UDP captured its endpoints are thrown instead. */
function endpointExclusions(spec: Spec): string[] {
  return !spec.tunnel.manage && capturesTunnelPackets(spec.split.protocols) ? (spec.tunnel.endpoints ?? []) : [];
}

function familyRoutes(spec: Spec, ipv6: Ipv6Policy, lists: PlanLists): FamilyRoute[] {
  const { split } = spec;
  if ((split.include_files && !lists.include) || (split.exclude_files && !lists.exclude)) {
    throw new Error("buildPlan: the spec names prefix list files, but their contents were not passed in options.lists");
  }
  const hasInclude = split.include !== undefined || split.include_files !== undefined;
  const included = hasInclude
    ? AddressSet.of(expand(split.include ?? [])).union(lists.include ?? AddressSet.EMPTY)
    : AddressSet.whole(4).union(AddressSet.whole(6));
  const excluded = AddressSet.of(expand([...split.exclude, ...endpointExclusions(spec)])).union(lists.exclude ?? AddressSet.EMPTY);
  const sourceOf = (family: Family) => spec.tunnel.addresses.find((a) => addressFamily(a) === family)?.split("/")[0];
  const families: Family[] = ipv6 === "direct" ? [4] : [4, 6];
  return families.flatMap((family) => {
    const captured = included.only(family).minus(excluded);
    if (captured.isEmpty()) {
      // An include list for one family only leaves the other alone; anything else that
      // captures nothing is a mistake worth stopping for.
      if (hasInclude && included.only(family).isEmpty()) return [];
      const path = hasInclude ? (split.include === undefined ? "split.include_files" : "split.include") : split.exclude_files === undefined ? "split.exclude" : "split.exclude_files";
      throw new PlanError(path, `leaves no ${LABEL[family]} destination to capture (split.exclude covers all of split.include); nothing would enter the tunnel`);
    }
    const source = family === 6 && ipv6 === "block" ? undefined : sourceOf(family);
    return [{ family, target: source === undefined ? { kind: "unreachable" } : { kind: "tunnel", source }, captured }];
  });
}


/**
 * Destinations the plan sends into the tunnel: each family's captured ones where they go
 * through it (not blocked IPv6), and the resolvers of tunnel.dns, which their host routes
 * reach through it even where excluded (resolverRoutes).
 */
function tunnelDestinations(spec: Spec, routes: readonly FamilyRoute[]): AddressSet {
  const resolvers = (spec.tunnel.dns ?? []).filter((a) => spec.tunnel.addresses.some((own) => addressFamily(own) === addressFamily(a)));
  return routes.filter((r) => r.target.kind === "tunnel").reduce((set, r) => set.union(r.captured), AddressSet.of(expand(resolvers)));
}

/** How many prefixes a line about destinations names before it counts the rest. */
const NAMED_PREFIXES = 3;

/**
 * The destinations of TUNNELLED that no prefix of ALLOWED holds, one line per family. WireGuard
 * routes by key: it sends a packet to the peer whose AllowedIPs hold its destination, and fails
 * the send when none does ("Required key not available", ENOKEY), so such traffic is captured and lost.
 */
export function outsideAllowedIps(tunnelled: AddressSet, allowed: Iterable<Prefix>): { family: Family; line: string }[] {
  const outside = tunnelled.minus(AddressSet.of(allowed));
  return ([4, 6] as const).flatMap((family) => {
    const count = outside.prefixCount(family);
    if (count === 0) return [];
    const named: string[] = [];
    outside.only(family).forEachCidr((text, index) => {
      if (index < NAMED_PREFIXES) named.push(text);
    });
    return [{ family, line: `${LABEL[family]} ${named.join(", ")}${count > NAMED_PREFIXES ? ` and ${count - NAMED_PREFIXES} more prefixes` : ""}` }];
  });
}

/** The widest prefix of each family: what allowed_ips holds to cover any destination. */
export const everyDestination = (families: readonly Family[]) => families.map((f) => (f === 4 ? "0.0.0.0/0" : "::/0"));
/** Prefixes as a spec's list spells them. */
export const specList = (prefixes: readonly string[]) => prefixes.map((p) => JSON.stringify(p)).join(", ");

function allowedIpsNote(spec: Spec, tunnelled: AddressSet): string[] {
  if (!spec.tunnel.manage) return []; // the peers are configured elsewhere; doctor reads them (allowed-ips)
  const outside = outsideAllowedIps(tunnelled, expand((spec.tunnel.peers ?? []).flatMap((p) => p.allowed_ips)));
  if (outside.length === 0) return [];
  return [
    `tunnel.peers: no peer's allowed_ips holds these captured destinations, so WireGuard drops what is sent to them ("Required key not available"): ${outside.map((o) => o.line).join("; ")}; add them to a peer's allowed_ips (e.g. ${specList(everyDestination(outside.map((o) => o.family)))})`,
  ];
}

/** The mode of a family's table: what captured traffic gets, and whether a downed tunnel must fail closed. */
function tableMode(route: FamilyRoute, spec: Spec): TableMode {
  if (route.target.kind === "unreachable") return "blocked";
  return spec.split.killswitch ? "guarded-tunnel" : "tunnel";
}

/**
 * The routes of the split table for every family: the fewest that give each address its
 * verdict under longest-prefix match (lpm-table.ts), with the tunnel's routes under its
 * link's limit; then written on the links that carry them, with comments.
 */
function tableRoutes(routes: readonly FamilyRoute[], spec: Spec): { routes: TableRoutes[]; notes: string[] } {
  // The resolvers' host routes (resolverRoutes) share the tunnel's link.
  const limit = ROUTES_PER_NETWORK - (spec.tunnel.dns ?? []).length;
  const { tables, limited } = cheapestTables(
    routes.map((route) => ({ family: route.family, captured: route.captured, mode: tableMode(route, spec) })),
    limit,
  );
  const count = tables.reduce((n, t) => n + t.count, 0);
  const tunnelled = tables.reduce((n, t) => n + t.counts[TUNNEL], 0);
  const notes = limited
    ? [
        `table ${spec.split.table}: ${count} routes where ${limited.unlimited} would do, since ${spec.tunnel.interface}'s .network holds at most ${limit} routes through the tunnel (this table uses ${tunnelled}); no table within that limit has fewer than ${limited.atLeast}`,
      ]
    : [];
  return { routes: routes.map((route, i) => familyTableRoutes(route, tables[i]!, spec)), notes };
}

function familyTableRoutes(route: FamilyRoute, lpm: LpmTable, spec: Spec): TableRoutes {
  const { family, target } = route;
  const { table } = spec.split;
  const tunnel = spec.tunnel.interface;
  const ofKind = (kind: RouteKind): TextSequence => ({ forEach: (visit) => lpm.forEachDestination(kind, visit) });
  const routes = (kind: RouteKind, comment: readonly string[], before: Entry[], after: Entry[]) =>
    sectionSeries("Route", { before, key: "Destination", values: ofKind(kind), after: [entry("Table", table), ...after] }, comment);
  const targetKind = target.kind === "tunnel" ? TUNNEL : UNREACHABLE;
  const targets = lpm.counts[targetKind];
  const throws = lpm.counts[THROW];
  const defaultOnly = targets === 1 && lpm.lengths[0] === 0;

  const comment: string[] =
    target.kind === "tunnel"
      ? [`${LABEL[family]} path: captured traffic leaves through ${tunnel} from ${target.source}.`]
      : [`${LABEL[family]} is blocked: captured traffic gets "network unreachable" at once, so applications fall back to IPv4 through the tunnel.`];
  if (throws === 0 && !defaultOnly) {
    comment.push(`Only the ${targets} captured prefixes are listed; any other destination finds no route in table ${table} and falls back to the next rule.`);
  }
  // Nesting, where the table uses it: a reviewer sees why a route sits inside a throw.
  const nested = lpm.nested(targetKind, THROW);
  if (nested.length > 0) {
    const inner = nested[0]!;
    const outer = lpm.parents[inner]!;
    const goes = target.kind === "tunnel" ? `goes through ${tunnel}` : `is unreachable`;
    const where = target.kind === "tunnel" ? `on ${anchorName(spec)}` : "below";
    comment.push(
      `${nested.length === 1 ? "One of these lies" : `${nested.length} of these lie`} inside a throw ${where}, which makes the table shorter: the kernel takes the longest matching prefix,`,
      `so ${lpm.destination(inner)} ${goes} while the rest of throw ${lpm.destination(outer)} falls back to the next rule.`,
    );
  }
  // Throws inside a target route other than the default carve exceptions out of it.
  const carved = lpm.nested(THROW, targetKind).filter((i) => lpm.lengths[lpm.parents[i]!] !== 0);
  if (carved.length > 0) {
    const where = target.kind === "tunnel" ? `on ${anchorName(spec)}` : "below";
    const inner = carved[0]!;
    comment.push(
      `Throws ${where} carve exceptions out of some of these (${carved.length} throw${carved.length === 1 ? "" : "s"}), which makes the table shorter: the kernel takes the longest matching prefix,`,
      `so throw ${lpm.destination(inner)} falls back to the next rule while the rest of ${lpm.destination(lpm.parents[inner]!)} ${target.kind === "tunnel" ? `goes through ${tunnel}` : "is unreachable"}.`,
    );
  }
  const targetRoutes =
    target.kind === "tunnel" ? routes(TUNNEL, comment, [], [entry("PreferredSource", target.source)]) : routes(UNREACHABLE, comment, [entry("Type", "unreachable")], []);

  const policy: SectionSeries[] = [];
  if (target.kind === "tunnel" && lpm.counts[UNREACHABLE] > 0) {
    const killswitch = [`Kill switch (${LABEL[family]}): while ${tunnel} is down or gone its routes vanish and these answer "unreachable", so captured traffic never falls back to the main table.`];
    if (lpm.counts[UNREACHABLE] > 1) {
      killswitch.push(`Each has the highest metric, so it loses to the route through ${tunnel} at its prefix, or to those inside it, while ${tunnel} is up.`);
    }
    policy.push(routes(UNREACHABLE, killswitch, [entry("Type", "unreachable")], [entry("Metric", LAST_RESORT_METRIC)]));
  }
  if (throws > 0) {
    const throwComment = [`Excluded ${LABEL[family]} destinations: a throw ends the lookup in table ${table}, so the kernel falls back to the next rule (main).`];
    const others = target.kind === "tunnel" ? `routes through ${tunnel} (in its .network)` : "the unreachable routes above";
    if (nested.length > 0) throwComment.push(`Where one of the ${others} lies inside a throw, the longer prefix wins: the throw answers only for the rest.`);
    if (carved.length > 0) throwComment.push(`Where a throw lies inside one of the ${others}, the throw wins for its own prefix.`);
    policy.push(routes(THROW, throwComment, [entry("Type", "throw")], []));
  }
  return target.kind === "tunnel" ? { path: [targetRoutes], policy } : { path: [], policy: [targetRoutes, ...policy] };
}

/** Policy routes in the order they fill the anchors, each run with how many routes it holds. */
interface CarriedRun {
  readonly series: SectionSeries;
  readonly count: number;
}

/**
 * Which anchor carries which policy routes: in order, at most ROUTES_PER_NETWORK per anchor
 * (a run cut where a file is full continues on the next anchor, its comment repeated with a
 * note). Always at least one anchor: the first also carries the rules. A run's destinations are
 * walked once, into the pieces the anchors take.
 */
function carryPolicy(policy: readonly SectionSeries[]): CarriedRun[][] {
  const anchors: CarriedRun[][] = [[]];
  let room = ROUTES_PER_NETWORK;
  for (const series of policy) {
    if (room === 0) {
      anchors.push([]);
      room = ROUTES_PER_NETWORK;
    }
    const pieces: string[][] = [[]];
    let quota = room;
    series.values.forEach((text) => {
      if (pieces.at(-1)!.length === quota) {
        pieces.push([]);
        quota = ROUTES_PER_NETWORK;
      }
      pieces.at(-1)!.push(text);
    });
    if (pieces[0]!.length === 0) continue;
    pieces.forEach((values, i) => {
      if (i > 0) {
        anchors.push([]);
        room = ROUTES_PER_NETWORK;
      }
      const comment = i === 0 ? series.comment : [...series.comment, `Continued from the previous anchor: one .network holds at most ${ROUTES_PER_NETWORK} routes here.`];
      anchors.at(-1)!.push({ series: { ...series, comment, values }, count: values.length });
      room -= values.length;
    });
  }
  return anchors;
}

/**
 * Host routes in the split table for the tunnel's resolvers, for the DNS rules to find: more
 * specific than any throw, so a resolver is reached through the tunnel even when its address is
 * excluded (10.253.0.1 is in @rfc1918). With the kill switch, an unreachable twin on the anchor
 * answers while the tunnel is down, so queries fail instead of falling back to main.
 */
function resolverRoutes(spec: Spec): TableRoutes {
  const { table, killswitch } = spec.split;
  const tunnel = spec.tunnel.interface;
  const routes: TableRoutes = { path: [], policy: [] };
  for (const family of [4, 6] as const) {
    const resolvers = (spec.tunnel.dns ?? []).filter((a) => addressFamily(a) === family);
    const source = spec.tunnel.addresses.find((a) => addressFamily(a) === family)?.split("/")[0];
    if (resolvers.length === 0 || source === undefined) continue;
    const destinations = resolvers.map((a) => `${a}/${family === 4 ? 32 : 128}`);
    routes.path.push(
      sectionSeries("Route", { key: "Destination", values: destinations, after: [entry("Table", table), entry("PreferredSource", source)] }, [
        `${LABEL[family]} resolvers of tunnel.dns: queries to them leave through ${tunnel} from ${source}, even where their addresses are excluded.`,
      ]),
    );
    if (killswitch) {
      routes.policy.push(
        sectionSeries("Route", { before: [entry("Type", "unreachable")], key: "Destination", values: destinations, after: [entry("Table", table), entry("Metric", LAST_RESORT_METRIC)] }, [
          `Kill switch (${LABEL[family]} resolvers): while ${tunnel} is down, queries to them fail instead of leaving through main.`,
        ]),
      );
    }
  }
  return routes;
}

/**
 * DNS to the tunnel's resolvers goes to the split table whatever the capture selectors say
 * (DNS is mostly UDP; a TCP-only split would otherwise send it direct) and for every user:
 * systemd-resolved sends queries as its own user, not as the application's. They sit with the
 * tunnel-mark rule at priority-2, before the rule that keeps connected destinations direct; the
 * two never match the same packet (validation refuses a resolver that is an endpoint on port 53).
 */
function resolverRules(spec: Spec): Section[] {
  const { table, priority } = spec.split;
  return (spec.tunnel.dns ?? []).flatMap((resolver) =>
    DNS_PROTOCOLS.map((protocol) =>
      section(
        "RoutingPolicyRule",
        [entry("Table", table), entry("To", `${resolver}/${addressFamily(resolver) === 4 ? 32 : 128}`), entry("IPProtocol", protocol), entry("DestinationPort", DNS_PORT), entry("Priority", priority - 2)],
        [`DNS over ${protocol.toUpperCase()} to the resolver ${resolver}, from every user: through ${spec.tunnel.interface} (table ${table}).`],
      ),
    ),
  );
}

/** The tunnel link's resolvers for systemd-resolved (networkd hands DNS=, Domains= and DNSDefaultRoute= to it), with a comment. */
function resolverSettings(spec: Spec): { entries: Entry[]; comment: string[] } {
  const { dns } = spec.tunnel;
  if (dns === undefined) return { entries: [], comment: [] };
  const domains = dnsDomains(spec);
  const everything = domains.includes("~.");
  return {
    entries: [...dns.map((a) => entry("DNS", a)), entry("Domains", domains.join(" ")), entry("DNSDefaultRoute", everything)],
    comment: [everything
      ? `systemd-resolved sends every lookup to these resolvers while ${spec.tunnel.interface} is up ("~." beats links without domains, such as the LAN's).`
      : `systemd-resolved sends only names under ${domains.map((d) => d.replace(/^~/, "")).join(", ")} to these resolvers; DNSDefaultRoute=false keeps all other lookups on the other links.`,
    ],
  };
}

/** Protocols that exist in one family only get rules in that family only. */
function protocolFamilies(protocol: Protocol): readonly Family[] {
  if (protocol === "icmp" || protocol === 1) return [4];
  if (protocol === "ipv6-icmp" || protocol === 58) return [6];
  return [4, 6];
}

/**
 * What IPProtocol= says for a protocol. networkd knows protocols by the kernel's IPPROTO_*
 * names, so it refuses the IANA name "ipv6-icmp" (to it "icmpv6"): networkd 252 logs "Failed to
 * parse IP protocol 'ipv6-icmp' for routing policy rule, ignoring" and installs no rule at all.
 * The number parses in every version.
 */
function ipProtocolValue(protocol: Exclude<Protocol, typeof ALL_PROTOCOLS>): string | number {
  return protocol === "ipv6-icmp" ? 58 : protocol;
}

function describeSelectors(family: Family, protocol: Protocol, user: number | string | undefined, port: number | string | undefined, local: boolean): string {
  return [
    LABEL[family],
    protocol === ALL_PROTOCOLS ? "all protocols" : String(protocol),
    ...(port === undefined ? [] : [`port ${port}`]),
    ...(user === undefined ? [] : [`uid ${user}`]),
    ...(local ? ["from this host"] : []),
  ].join(" ");
}

/**
 * How split.inbound = "direct" sorts one family's route lookups by their source. A lookup
 * without a source comes from a socket that has none yet; it is captured and then takes the
 * tunnel route's PreferredSource. A lookup from the tunnel's own address is that socket's
 * later lookups, or a reply to a connection that came in through the tunnel: captured too.
 * A lookup from any other address of this host is a reply to a connection that came in on
 * another link, or a socket bound to that link's address: it stays off the tunnel.
 *
 * The families differ in how a rule's source prefix meets a lookup without a source: IPv4
 * compares it with 0.0.0.0 (From=0.0.0.0/32 matches), IPv6 never matches it
 * (fib6_rule_match), so IPv6 sends the lookups that have a source (From=::/1 and
 * From=8000::/1, which together cover every address) to main, and captures the rest after.
 */
interface InboundRules {
  /** From= of the capture rules at the split's priority. */
  readonly captured: readonly string[];
  /** From= of the rules that send this host's other source-bound lookups to main (undefined: any source). */
  readonly sourceBound: readonly (string | undefined)[];
  /** SourcePort= of those rules, when only lookups that already have a source port may go to main. */
  readonly sourcePort?: string;
  /** Whether source-bound lookups first meet the kill switch (priority+1). */
  readonly guarded: boolean;
}

const ANY_IPV6_SOURCE = ["::/1", "8000::/1"];
/**
 * Every source port a rule can name: the kernel refuses a port range that starts at 0 or ends
 * at 65535 (fib_rule_port_range_valid), so a reply from port 65535 stays blocked.
 */
const ANY_SOURCE_PORT = "1-65534";

/**
 * undefined: capture every source. That is split.inbound = "capture", and a blocked family
 * for protocols other than TCP. When an unbound IPv6 socket's lookup fails, the kernel picks
 * a source by address selection (a LAN address) and looks up again (ip6_dst_lookup_tail), so
 * a block that let every source-bound lookup through would let every unbound connection
 * through. TCP tells the two apart by the source port: a connecting socket looks up its route
 * before it has a port (tcp_v6_connect), both times, while a reply to a connection that came
 * in (the SYN-ACK, every later segment) carries the port it listens on. UDP binds its port
 * before the first lookup, so its replies and its new datagrams look alike: blocked UDP stays
 * captured from every source. The kill switch answers like a block while the tunnel is down,
 * hence the guard for IPv6.
 */
function inboundRules(spec: Spec, route: FamilyRoute, protocol: Protocol): InboundRules | undefined {
  if (spec.split.inbound !== "direct") return undefined;
  if (route.target.kind === "unreachable") {
    return route.family === 6 && protocol === "tcp" ? { captured: [], sourceBound: ANY_IPV6_SOURCE, sourcePort: ANY_SOURCE_PORT, guarded: false } : undefined;
  }
  const own = [...new Set(spec.tunnel.addresses.filter((a) => addressFamily(a) === route.family).map((a) => `${a.split("/")[0]}/${route.family === 4 ? 32 : 128}`))];
  return route.family === 4
    ? { captured: ["0.0.0.0/32", ...own], sourceBound: [undefined], guarded: false }
    : { captured: own, sourceBound: ANY_IPV6_SOURCE, guarded: spec.split.killswitch };
}

function rules(spec: Spec, routes: readonly FamilyRoute[]): Section[] {
  const { table, priority, protocols, direct_connected, sources, users, ports } = spec.split;
  const local = sources === "local";
  const markTunnelPackets = spec.tunnel.manage && capturesTunnelPackets(protocols);
  const tunnel = spec.tunnel.interface;
  const sections: Section[] = [];
  for (const route of routes) {
    const { family } = route;
    if (markTunnelPackets) {
      const mark = tunnelFwmark(spec);
      sections.push(
        section("RoutingPolicyRule", [entry("Table", "main"), entry("FirewallMark", mark), entry("Family", FAMILY_NAME[family]), entry("Priority", priority - 2)], [
          `${LABEL[family]}: the tunnel's own encrypted packets (${tunnel} marks them ${mark}) always use main, so capturing UDP cannot loop them back into the tunnel.`,
        ]),
      );
    }
    for (const protocol of protocols.filter((p) => protocolFamilies(p).includes(family))) {
      const inbound = inboundRules(spec, route, protocol);
      for (const user of users ?? [undefined]) {
        for (const port of ports ?? [undefined]) {
          const selectors: Entry[] = [
            ...(local ? [entry("IncomingInterface", "lo")] : []),
            ...(user === undefined ? [] : [entry("User", user)]),
            ...(protocol === ALL_PROTOCOLS ? [] : [entry("IPProtocol", ipProtocolValue(protocol))]),
            ...(port === undefined ? [] : [entry("DestinationPort", port)]),
            entry("Family", FAMILY_NAME[family]),
          ];
          const what = describeSelectors(family, protocol, user, port, local);
          const rule = (head: Entry[], offset: number, comment: string, extra: Entry[] = []) =>
            section("RoutingPolicyRule", [...head, ...extra, ...selectors, entry("Priority", priority + offset)], [comment]);
          if (direct_connected) {
            sections.push(rule([entry("Table", "main"), entry("SuppressPrefixLength", 0)], -1, `${what}: destinations that main knows more specifically than its default route (connected LANs, docker bridges) stay direct.`));
          }
          if (inbound === undefined) {
            sections.push(rule([entry("Table", table)], 0, `${what}: everything else is looked up in table ${table}.`));
            continue;
          }
          for (const from of inbound.captured) {
            const whose = from === "0.0.0.0/32" ? "from a socket without a source yet (it then takes the tunnel's)" : `from the tunnel's address ${from.split("/")[0]}`;
            sections.push(rule([entry("Table", table), entry("From", from)], 0, `${what} ${whose}: everything else is looked up in table ${table}.`));
          }
          // IPv4 with sources = "local" is done: its capture rules took every lookup they should.
          if (family === 4 && local) continue;
          const thisHost = local ? [] : [entry("IncomingInterface", "lo")];
          const fromEntries = (from: string | undefined) => [...(from === undefined ? [] : [entry("From", from)]), ...thisHost];
          if (inbound.guarded) {
            for (const from of inbound.sourceBound) {
              sections.push(rule([entry("Table", table), entry("SuppressPrefixLength", 128)], 1, `${what} from this host's other addresses${from ? ` (${from})` : ""}: only the kill switch's "unreachable" counts here, since while ${tunnel} is down the kernel retries an unbound socket's failed lookup from a LAN address; the path through ${tunnel} is suppressed.`, fromEntries(from)));
            }
          }
          const { sourcePort } = inbound;
          for (const from of inbound.sourceBound) {
            const which = from ? ` (${from})` : "";
            const comment =
              sourcePort === undefined
                ? `${what} from this host's other addresses${which} (replies to connections that came in on another link, sockets bound to it) stays direct.`
                : `${what} from this host's addresses${which} with a source port (replies to connections that came in on another link; a connecting socket has no port yet when it looks up its route) stays direct.`;
            sections.push(rule([entry("Table", "main")], 2, comment, [...fromEntries(from), ...(sourcePort === undefined ? [] : [entry("SourcePort", sourcePort)])]));
          }
          const unsourced = sourcePort === undefined ? "without a source yet" : "from a connecting socket (also the kernel's retry from a LAN address after the table refused it)";
          const rest = family === 4 ? "forwarded (containers, VMs: their own source addresses)" : local ? unsourced : `${unsourced}, and forwarded (containers, VMs)`;
          sections.push(rule([entry("Table", table)], 3, `${what}, ${rest}: looked up in table ${table}.`));
        }
      }
    }
  }
  return sections;
}

function tunnelNetdev(spec: Spec, fileName: string): Unit {
  const { tunnel } = spec;
  const wireguard: Entry[] = [entry("PrivateKeyFile", tunnel.private_key_file!)];
  if (tunnel.listen_port !== undefined) wireguard.push(entry("ListenPort", tunnel.listen_port));
  const comment = ["RouteTable=off: WireGuard adds no routes for AllowedIPs; the policy decides what enters the tunnel."];
  if (capturesTunnelPackets(spec.split.protocols)) {
    wireguard.push(entry("FirewallMark", tunnelFwmark(spec)));
    comment.push("FirewallMark: marks the tunnel's own encrypted packets so the policy can keep them out of the tunnel.");
  }
  wireguard.push(entry("RouteTable", "off"));
  const peers = (tunnel.peers ?? []).map((peer) => {
    const entries: Entry[] = [entry("PublicKey", peer.public_key)];
    if (peer.preshared_key_file !== undefined) entries.push(entry("PresharedKeyFile", peer.preshared_key_file));
    if (peer.endpoint !== undefined) entries.push(entry("Endpoint", peer.endpoint));
    entries.push(...peer.allowed_ips.map((ip) => entry("AllowedIPs", ip)));
    if (peer.persistent_keepalive !== undefined) entries.push(entry("PersistentKeepalive", peer.persistent_keepalive));
    return section("WireGuardPeer", entries);
  });
  return {
    kind: "netdev",
    fileName,
    comment: [`The WireGuard interface ${tunnel.interface}. The private key stays in its own file.`],
    sections: [section("NetDev", [entry("Name", tunnel.interface), entry("Kind", "wireguard")]), section("WireGuard", wireguard, comment), ...peers],
  };
}

function tunnelNetwork(spec: Spec, fileName: string, path: readonly SectionSeries[], anchor: string): Unit {
  const { tunnel } = spec;
  const resolvers = resolverSettings(spec);
  const sections: Section[] = [
    section("Match", [entry("Name", tunnel.interface)]),
    section("Network", [...tunnel.addresses.map((address) => entry("Address", address)), ...resolvers.entries], resolvers.comment),
  ];
  if (tunnel.mtu !== undefined) sections.push(section("Link", [entry("MTUBytes", tunnel.mtu)]));
  return {
    kind: "network",
    fileName,
    comment: [`The tunnel's addresses and its path in table ${spec.split.table}; the rules and throws that decide what takes it live on ${anchor}.`],
    sections: [...sections, ...path],
  };
}

/** Why the policy may span several anchors, for the comments of the files that show it. */
const SPREAD_COMMENT = [
  `networkd applies at most 8,192 static routes per .network file and drops the rest, so the policy's routes are spread`,
  `over anchors of at most ${ROUTES_PER_NETWORK} routes each (one .netdev and one .network per anchor); the rules stay on the first.`,
];

function anchorNetdev(anchor: string, fileName: string, part: { index: number; of: number; first: string }): Unit {
  const role =
    part.index === 0
      ? [`${anchor} anchors the split's policy. It carries no traffic: a bridge without ports (the dummy driver is not on every kernel),`]
      : [`${anchor} carries part ${part.index + 1} of ${part.of} of the split's routes (the rules are on ${part.first}). It carries no traffic: a bridge without ports,`];
  return {
    kind: "netdev",
    fileName,
    comment: [...role, "always present, so the rules and routes configured on it stay while the tunnel goes down and comes back.", ...(part.of > 1 ? SPREAD_COMMENT : [])],
    sections: [section("NetDev", [entry("Name", anchor), entry("Kind", "bridge")])],
  };
}

function anchorNetwork(spec: Spec, fileName: string, anchor: string, policy: readonly CarriedRun[], rules: readonly Section[], routes: readonly FamilyRoute[], part: { index: number; of: number; first: string }): Unit {
  const { split, tunnel } = spec;
  const families = routes.map((r) => LABEL[r.family]).join(" and ");
  const protocols = split.protocols.map(String).join(", ");
  const count = policy.reduce((sum, run) => sum + run.count, 0);
  return {
    kind: "network",
    fileName,
    comment: [
      part.index === 0
        ? `Split tunnel: ${protocols} over ${families} to destinations outside the excluded sets leaves through ${tunnel.interface} (table ${split.table}); all other traffic follows the main table.`
        : `Part ${part.index + 1} of ${part.of} of the split's routes in table ${split.table} (${count} routes); the rules are on ${part.first}.`,
      ...(part.of > 1 ? SPREAD_COMMENT : []),
    ],
    sections: [
      section("Match", [entry("Name", anchor)]),
      section("Network", [entry("ConfigureWithoutCarrier", true), entry("LinkLocalAddressing", "no"), entry("IPv6AcceptRA", false)], [
        "No ports means no carrier: configure the policy anyway, and give the link no addresses of its own.",
      ]),
      section("Link", [entry("RequiredForOnline", false)], ["Never hold up network-online.target for a link that carries no traffic."]),
      ...policy.map((run) => run.series),
      ...rules,
    ],
  };
}

function networkdConf(fileName: string): Unit {
  return {
    kind: "networkd-conf",
    fileName,
    comment: [
      "networkd (since 248) may remove routing policy rules it did not configure, such as tailscale's;",
      "this keeps them. Our own rules are configured by networkd and are not affected.",
    ],
    sections: [section("Network", [entry("ManageForeignRoutingPolicyRules", false)])],
  };
}

/**
 * The kill switch for lookups under "~.": the tunnel's resolvers also as resolved's global servers.
 * wg0's own servers go when wg0 goes down or away, and resolved then sends every lookup to the
 * remaining links' servers (the LAN's); the global ones stay, and queries to them meet the kill
 * switch's unreachable routes. Split domains get no such twin: a global server is a default route
 * for every name in resolved, so it would take lookups the split leaves to the other links.
 */
function resolvedConf(spec: Spec, fileName: string): Unit | undefined {
  const { dns, interface: tunnel } = spec.tunnel;
  if (dns === undefined || !spec.split.killswitch || !dnsDomains(spec).includes("~.")) return undefined;
  return {
    kind: "resolved-conf",
    fileName,
    comment: [
      `DNS kill switch: systemd-resolved sends every lookup to the tunnel's resolvers even while ${tunnel} is down or gone,`,
      `where queries to them fail at once (the split's unreachable routes) instead of going to the LAN's resolver.`,
    ],
    sections: [section("Resolve", [...dns.map((a) => entry("DNS", a)), entry("Domains", "~.")])],
  };
}

/** Where systemd-networkd-wait-online lives on distributions with /usr merged (all that ship networkd 252 or later). */
export const WAIT_ONLINE = "/usr/lib/systemd/systemd-networkd-wait-online";
/** How long a service ordered after the anchors waits for them before it starts anyway. */
const ANCHOR_WAIT_SECONDS = 30;

/**
 * The kill switch at boot (split.killswitch_before): a drop-in that starts SERVICE, which
 * brings up links networkd does not manage, only once networkd has configured the anchors.
 * Before that the policy is not in the kernel, and captured traffic would leave through
 * those links directly (measured in the lab: hundreds of packets per boot; docs/leakproof.md §8).
 */
function killswitchBefore(service: string, anchors: readonly string[], fileName: string): Unit {
  const wait = [`-${WAIT_ONLINE}`, ...anchors.map((a) => `--interface=${a}:no-carrier`), `--timeout=${ANCHOR_WAIT_SECONDS}`].join(" ");
  return {
    kind: "service-drop-in",
    fileName,
    service,
    comment: [
      `Kill switch at boot: ${service} starts once networkd has configured ${anchors.join(", ")}, so that no captured traffic`,
      `leaves through the links ${service} brings up before the split's rules and unreachable routes are in the kernel.`,
    ],
    sections: [
      section("Unit", [entry("Wants", "systemd-networkd.service"), entry("After", "systemd-networkd.service")]),
      section("Service", [entry("ExecStartPre", wait)], [
        `An anchor has no ports, hence "no-carrier"; wait-online returns once networkd has configured it.`,
        `"-": after ${ANCHOR_WAIT_SECONDS} s (networkd failed or is masked) ${service} starts anyway; a host without its network is worse.`,
      ]),
    ],
  };
}

/**
 * The anchors' names: split.anchor, then split.anchor-2, -3, ... (interface names: 15 bytes at most).
 * networkd's own netdev names must be unique, so a name that does not fit is an error, never cut short.
 */
export function anchorNames(anchor: string, count: number): string[] {
  const names = Array.from({ length: count }, (_, i) => (i === 0 ? anchor : `${anchor}-${i + 1}`));
  const longest = names.at(-1)!;
  if (Buffer.byteLength(longest) > 15) {
    const room = 15 - `-${count}`.length;
    throw new PlanError(
      "split.anchor",
      `the table's routes need ${count} anchor links (at most ${ROUTES_PER_NETWORK} routes per .network), but "${longest}" is longer than the 15 bytes of an interface name; set split.anchor to a name of at most ${room} bytes`,
    );
  }
  return names;
}

export function buildPlan(spec: Spec, options: PlanOptions): Plan {
  const { policy: ipv6, note } = chooseIpv6(spec);
  const routes = familyRoutes(spec, ipv6, options.lists ?? {});
  const split = tableRoutes(routes, spec);
  const table = [...split.routes, resolverRoutes(spec)];
  const path = table.flatMap((t) => t.path);
  const carried = carryPolicy(table.flatMap((t) => t.policy));
  const anchors = anchorNames(anchorName(spec)!, carried.length);
  const stem = `${options.prefix}-${spec.tunnel.interface}`;
  const units: Unit[] = [];
  if (spec.tunnel.manage) units.push(tunnelNetdev(spec, `${stem}.netdev`));
  units.push(tunnelNetwork(spec, `${stem}.network`, path, anchors[0]!));
  carried.forEach((policy, index) => {
    const part = { index, of: anchors.length, first: anchors[0]! };
    const anchor = anchors[index]!;
    units.push(anchorNetdev(anchor, `${options.prefix}-${anchor}.netdev`, part));
    units.push(anchorNetwork(spec, `${options.prefix}-${anchor}.network`, anchor, policy, index === 0 ? [...resolverRules(spec), ...rules(spec, routes)] : [], routes, part));
  });
  units.push(networkdConf(`${stem}.conf`));
  const resolved = resolvedConf(spec, `${stem}-dns.conf`);
  if (resolved) units.push(resolved);
  for (const service of spec.split.killswitch_before ?? []) units.push(killswitchBefore(service, anchors, `${options.prefix}-${anchors[0]}.conf`));
  let total = carried.flat().reduce((sum, run) => sum + run.count, 0);
  for (const series of path) series.values.forEach(() => total++);
  const tunnelled = tunnelDestinations(spec, routes);
  const notes = [
    ...(note ? [note] : []),
    ...allowedIpsNote(spec, tunnelled),
    ...split.notes,
    ...(anchors.length > 1 ? [`table ${spec.split.table}: ${total} routes, spread over ${anchors.length} anchor links (${anchors[0]} … ${anchors.at(-1)}) of at most ${ROUTES_PER_NETWORK} routes each, since networkd drops routes past 8,192 per .network file`] : []),
    ...(total > ROUTES_AT_ONCE_OLD_NETWORKD
      ? [`table ${spec.split.table}: ${total} routes: networkd 252 and 254 (Debian 12 and its backports) fail links with "Numerical result out of range" past about 65,000 routes at once; this needs networkd 257 or later (gen-networkd doctor names the cause)`]
      : []),
  ];
  return { identity: spec.tunnel.interface, specHash: specHash(spec, options.lists), units, notes, routes: total, tunnelled };
}
