// Plan: from a validated spec to the format-neutral model of what to emit.
//
// This is where every decision is made (which routes, which rules, in which
// order, with which comments); renderers only spell the result. The routing
// design follows the blog's working script, extended where it falls short:
//
//   table T:   the tunnel path (default dev wg0 src ADDR), plus a throw per excluded
//              prefix, so excluded destinations fall back to the next rule (main)
//   prio P-1:  selectors → main, suppress_prefixlength 0 — whatever main knows more
//              specifically than its default route (connected LANs, docker) stays direct
//   prio P:    selectors → T (the blog's `ip rule add ipproto tcp table 10086`)

import { createHash } from "node:crypto";
import { entry, section, type Entry, type Plan, type Section, type Unit } from "./model.js";
import { aggregate, complement, formatPrefix, parsePrefix, subtract, type Family, type Prefix } from "./prefix.js";
import { namedSet } from "./named-sets.js";
import { addressFamily, HELPER_RULE_COUNT, type Spec } from "./spec.js";

export interface PlanOptions {
  /** Two-digit file name prefix that orders our files among others in the directory. */
  readonly prefix: string;
}

export class PlanError extends Error {
  constructor(readonly path: string, message: string) {
    super(message);
  }
}

const FAMILY_NAME: Record<Family, "ipv4" | "ipv6"> = { 4: "ipv4", 6: "ipv6" };
const LABEL: Record<Family, string> = { 4: "IPv4", 6: "IPv6" };
const WHOLE: Record<Family, Prefix> = {
  4: { family: 4, network: 0n, length: 0 },
  6: { family: 6, network: 0n, length: 0 },
};

type Ipv6Policy = NonNullable<Spec["split"]["ipv6"]>;

/** What the split does with one address family: where captured traffic goes, and which destinations. */
interface FamilyRoute {
  readonly family: Family;
  /** "tunnel": through the interface from `source`; "unreachable": captured traffic fails fast. */
  readonly target: { kind: "tunnel"; source: string } | { kind: "unreachable" };
  /** The minimal set of destinations captured into the table. */
  readonly captured: readonly Prefix[];
}

/** sha256 of the spec in canonical form (keys sorted, editor-only `$schema` dropped). */
export function specHash(spec: Spec): string {
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
  return createHash("sha256").update(JSON.stringify(canonical(spec))).digest("hex");
}

function expand(items: readonly string[]): Prefix[] {
  return items.flatMap((item) =>
    (namedSet(item) ?? [item]).map((text) => {
      const parsed = parsePrefix(text);
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

function familyRoutes(spec: Spec, ipv6: Ipv6Policy): FamilyRoute[] {
  const excluded = aggregate(expand(spec.split.exclude));
  const sourceOf = (family: Family) => spec.tunnel.addresses.find((a) => addressFamily(a) === family)?.split("/")[0];
  const families: Family[] = ipv6 === "direct" ? [4] : [4, 6];
  return families.map((family) => {
    const source = family === 6 && ipv6 === "block" ? undefined : sourceOf(family);
    const captured = subtract([WHOLE[family]], excluded.filter((p) => p.family === family));
    if (captured.length === 0) {
      throw new PlanError("split.exclude", `excludes every ${LABEL[family]} destination, so nothing would enter the tunnel; remove the covering prefix`);
    }
    return { family, target: source === undefined ? { kind: "unreachable" } : { kind: "tunnel", source }, captured };
  });
}

/**
 * The routes of the split table for one family, in the cheaper of two equivalent forms:
 * a default target plus a throw per hole (the blog's form), or one target route per
 * captured prefix (a missing route falls through to the next rule just as a throw does).
 */
function tableRoutes(route: FamilyRoute, table: number, tunnel: string): Section[] {
  const { family, target, captured } = route;
  const holes = complement(captured, family);
  const targetRoute = (destination: Prefix): Entry[] =>
    target.kind === "tunnel"
      ? [entry("Destination", formatPrefix(destination)), entry("Table", table), entry("PreferredSource", target.source)]
      : [entry("Type", "unreachable"), entry("Destination", formatPrefix(destination)), entry("Table", table)];
  const what =
    target.kind === "tunnel"
      ? `${LABEL[family]} path: captured traffic leaves through ${tunnel} from ${target.source}.`
      : `${LABEL[family]} is blocked: captured traffic gets "network unreachable" at once, so applications fall back to IPv4 through the tunnel.`;

  if (captured.length < 1 + holes.length) {
    return captured.map((destination, index) =>
      section("Route", targetRoute(destination), index === 0 ? [what, `Only the ${captured.length} captured prefixes are listed; any other destination finds no route here and falls back to the next rule.`] : []),
    );
  }
  return [
    section("Route", targetRoute(WHOLE[family]), [what]),
    ...holes.map((hole, index) =>
      section(
        "Route",
        [entry("Type", "throw"), entry("Destination", formatPrefix(hole)), entry("Table", table)],
        index === 0 ? [`Excluded ${LABEL[family]} destinations: a throw ends the lookup in table ${table}, so the kernel falls back to the next rule (main).`] : [],
      ),
    ),
  ];
}

function rules(spec: Spec, routes: readonly FamilyRoute[]): Section[] {
  const { table, priority, protocols, direct_connected } = spec.split;
  const sections: Section[] = [];
  for (const { family } of routes) {
    for (const protocol of protocols) {
      const selectors = [entry("IPProtocol", protocol), entry("Family", FAMILY_NAME[family])];
      if (direct_connected) {
        sections.push(
          section("RoutingPolicyRule", [entry("Table", "main"), entry("SuppressPrefixLength", 0), ...selectors, entry("Priority", priority - HELPER_RULE_COUNT)], [
            `${LABEL[family]} ${protocol}: destinations that main knows more specifically than its default route (connected LANs, docker bridges) stay direct.`,
          ]),
        );
      }
      sections.push(
        section("RoutingPolicyRule", [entry("Table", table), ...selectors, entry("Priority", priority)], [
          `${LABEL[family]} ${protocol}: everything else is looked up in table ${table}.`,
        ]),
      );
    }
  }
  return sections;
}

function netdevUnit(spec: Spec, fileName: string): Unit {
  const { tunnel } = spec;
  const wireguard: Entry[] = [entry("PrivateKeyFile", tunnel.private_key_file!)];
  if (tunnel.listen_port !== undefined) wireguard.push(entry("ListenPort", tunnel.listen_port));
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
    sections: [
      section("NetDev", [entry("Name", tunnel.interface), entry("Kind", "wireguard")]),
      section("WireGuard", wireguard, ["RouteTable=off: WireGuard adds no routes for AllowedIPs; the .network's policy decides what enters the tunnel."]),
      ...peers,
    ],
  };
}

function networkUnit(spec: Spec, fileName: string, routes: readonly FamilyRoute[]): Unit {
  const { tunnel, split } = spec;
  const sections: Section[] = [
    section("Match", [entry("Name", tunnel.interface)]),
    section("Network", tunnel.addresses.map((address) => entry("Address", address))),
  ];
  if (tunnel.mtu !== undefined) sections.push(section("Link", [entry("MTUBytes", tunnel.mtu)]));
  sections.push(...routes.flatMap((route) => tableRoutes(route, split.table, tunnel.interface)));
  sections.push(...rules(spec, routes));
  const families = routes.map((r) => LABEL[r.family]).join(" and ");
  return {
    kind: "network",
    fileName,
    comment: [`Split tunnel: ${split.protocols.join(", ")} over ${families} to destinations outside the excluded sets leaves through ${tunnel.interface} (table ${split.table}); all other traffic follows the main table.`],
    sections,
  };
}

export function buildPlan(spec: Spec, options: PlanOptions): Plan {
  const { policy, note } = chooseIpv6(spec);
  const routes = familyRoutes(spec, policy);
  const stem = `${options.prefix}-${spec.tunnel.interface}`;
  const units: Unit[] = [];
  if (spec.tunnel.manage) units.push(netdevUnit(spec, `${stem}.netdev`));
  units.push(networkUnit(spec, `${stem}.network`, routes));
  return { identity: spec.tunnel.interface, specHash: specHash(spec), units, notes: note ? [note] : [] };
}
