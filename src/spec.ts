// The split-tunnel spec, version 1: its schema, its validation, its types.
//
// One zod definition is the single source of truth: it validates specs, names
// the JSON path of every problem, and (via zod's JSON Schema export) documents
// the format for editors. Values come out canonical (prefixes in their shortest
// form), so two spellings of one spec hash and render the same.

import * as z from "zod";
import { formatAddress, formatPrefix, parseAddress, parsePrefix, type Family } from "./prefix.js";
import { LOCAL_SET, namedSet, namedSetNames } from "./named-sets.js";
import { didYouMean } from "./suggest.js";
import { INVISIBLE, quoteText, quoteValue } from "./text.js";
import { continuesLine } from "./unitfile.js";

export const SPEC_VERSION = 1;

// Kernel rule priorities 0 (local), 32766 (main) and 32767 (default) are taken;
// tailscale installs its rules at 5210..5270.
export const TAILSCALE_PRIORITIES = { first: 5210, last: 5270 } as const;
/**
 * Our helper rules sit just before the capture rules: priority-2 sends the tunnel's
 * own (marked) packets to main, priority-1 looks up main without its default route.
 */
export const HELPER_RULE_COUNT = 2;
/**
 * With split.inbound = "direct", up to three rules follow the capture rules: priority+1 keeps
 * IPv6 source-bound lookups out of the tunnel only while the kill switch is not answering,
 * priority+2 sends this host's other source-bound traffic to main, priority+3 captures
 * forwarded traffic (sources = "all").
 */
export const INBOUND_RULE_COUNT = 3;
/** tailscale marks its own packets with bits under this mask (0x80000 and friends). */
export const TAILSCALE_FWMARK_MASK = 0xff0000;

/** Protocol names the spec documents (IANA's; the plan writes ipv6-icmp as 58 for networkd); numbers 1..255 work too. */
export const PROTOCOL_NAMES = ["tcp", "udp", "icmp", "ipv6-icmp", "sctp"] as const;
/** "all" captures every protocol (a rule without IPProtocol=). */
export const ALL_PROTOCOLS = "all";
/** Protocols that carry ports, so split.ports can narrow them. */
const PORTED_PROTOCOLS = new Set<string | number>(["tcp", "udp", "sctp", 6, 17, 132]);
const RESERVED_TABLES: Record<number, string> = { 253: "default", 254: "main", 255: "local" };

/** A problem found in a spec: where, and what (message already carries value and hint). */
export interface SpecProblem {
  readonly path: string;
  readonly message: string;
}

const quote = quoteValue;

/** A string refined by a checker that returns a problem text, or undefined when fine. */
function checkedString(problem: (value: string) => string | undefined) {
  return z.string().superRefine((value, ctx) => {
    const message = problem(value);
    if (message !== undefined) ctx.addIssue({ code: "custom", message });
  });
}

function interfaceNameProblem(name: string): string | undefined {
  const bytes = Buffer.byteLength(name);
  if (bytes === 0) return `interface name is empty`;
  if (bytes > 15) return `${quote(name)} is ${bytes} bytes long; Linux interface names have at most 15`;
  if (name === "." || name === "..") return `${quote(name)} is not a valid interface name`;
  if (/[/:\s]/.test(name)) return `${quote(name)} contains '/', ':' or whitespace, which Linux interface names cannot`;
  // Linux allows more, but networkd reads [Match] Name= as a list of globs: "wg*" would match every wg link.
  const odd = /[^A-Za-z0-9_.-]/.exec(name);
  if (odd) return `${quote(name)} contains ${quote(odd[0])}; use letters, digits, '-', '_' and '.' (networkd reads [Match] Name= as a list of glob patterns)`;
  return undefined;
}

/**
 * A service that brings up links networkd does not manage (NetworkManager.service,
 * networking.service): a unit name systemd accepts for a drop-in directory.
 */
function serviceNameProblem(name: string): string | undefined {
  if (!name.endsWith(".service")) {
    return /^[A-Za-z0-9:_.@\\-]+$/.test(name) ? `${quote(name)} is not a service unit name; write ${quote(`${name}.service`)}` : `${quote(name)} is not a service unit name, e.g. "NetworkManager.service"`;
  }
  // systemd's unit_name_is_valid(): at most 255 bytes of [A-Za-z0-9:_.\\-], an optional "@instance".
  if (Buffer.byteLength(name) > 255 || !/^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?\.service$/.test(name)) {
    return `${quote(name)} is not a unit name systemd accepts (letters, digits, ":_.\\-", one "@instance")`;
  }
  if (name === "systemd-networkd.service") return `${quote(name)} is networkd itself, which configures the anchor: ordering it after the anchor is a cycle`;
  return undefined;
}

function prefixProblem(text: string): string | undefined {
  const parsed = parsePrefix(text);
  if (parsed.ok) return undefined;
  return `${quote(text)} ${parsed.message}${parsed.hint ? `; ${parsed.hint}` : ""}`;
}

/** An interface address: host bits are the point here ("10.253.0.2/24"). */
function interfaceAddressProblem(text: string): string | undefined {
  const slash = text.indexOf("/");
  if (slash < 0) return `${quote(text)} has no prefix length; write e.g. ${quote(`${text}/32`)} (or /128 for IPv6)`;
  const address = parseAddress(text.slice(0, slash));
  if (!address.ok) return `${quote(text)}: address ${address.message}`;
  const length = text.slice(slash + 1);
  const max = address.value.family === 4 ? 32 : 128;
  if (!/^(0|[1-9][0-9]*)$/.test(length) || Number(length) > max) {
    return `${quote(text)} has prefix length ${quote(length)}; expected 0..${max}`;
  }
  return undefined;
}

function excludeItemProblem(item: string): string | undefined {
  if (item.startsWith("@")) {
    return namedSet(item) ? undefined : `${quote(item)} is not a named set${didYouMean(item, namedSetNames())} (known: ${namedSetNames().join(", ")})`;
  }
  return prefixProblem(item);
}

function canonicalPrefixItem(item: string): string {
  if (item.startsWith("@")) return item;
  const parsed = parsePrefix(item);
  return parsed.ok ? formatPrefix(parsed.value) : item;
}

function canonicalInterfaceAddress(text: string): string {
  const slash = text.indexOf("/");
  const address = parseAddress(text.slice(0, slash));
  if (!address.ok) return text;
  return `${formatAddress(address.value.family, address.value.value)}${text.slice(slash)}`;
}

function wireguardKeyProblem(key: string): string | undefined {
  const decoded = Buffer.from(key, "base64");
  if (key.length !== 44 || decoded.length !== 32 || decoded.toString("base64") !== key) {
    return `${quote(key)} is not a WireGuard public key (32 bytes in base64: 44 characters ending in "="); copy it from \`wg pubkey\``;
  }
  return undefined;
}

const HOSTNAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

function endpointProblem(endpoint: string): string | undefined {
  const hint = 'expected host:port, [IPv6]:port or hostname:port, e.g. "198.51.100.7:51820"';
  const match = /^(\[([^\]]*)\]|[^:[\]]+):([^:]*)$/.exec(endpoint);
  if (!match) {
    const looksV6 = (endpoint.match(/:/g) ?? []).length > 1 && !endpoint.startsWith("[");
    return `${quote(endpoint)} is not an endpoint; ${looksV6 ? "put an IPv6 address in brackets, e.g. \"[2001:db8::1]:51820\"" : hint}`;
  }
  const [, hostPart, v6, port] = match;
  if (v6 !== undefined) {
    const address = parseAddress(v6);
    if (!address.ok || address.value.family !== 6) return `${quote(endpoint)}: ${quote(v6)} is not an IPv6 address; ${hint}`;
  } else if (/^[0-9.]+$/.test(hostPart!)) {
    const address = parseAddress(hostPart!);
    if (!address.ok) return `${quote(endpoint)}: ${quote(hostPart)} ${address.message}`;
  } else if (!HOSTNAME.test(hostPart!)) {
    return `${quote(endpoint)}: ${quote(hostPart)} is not a valid hostname; ${hint}`;
  }
  if (!/^[1-9][0-9]*$/.test(port!) || Number(port) > 65535) return `${quote(endpoint)} has port ${quote(port)}; expected 1..65535`;
  return undefined;
}

/** "ADDRESS PORT" of an endpoint with a literal address (canonical form), else undefined. */
function endpointHostPort(endpoint: string): string | undefined {
  const match = /^(?:\[([^\]]*)\]|([^:[\]]+)):([0-9]+)$/.exec(endpoint);
  const address = match && parseAddress(match[1] ?? match[2]!);
  return address?.ok ? `${formatAddress(address.value.family, address.value.value)} ${Number(match![3])}` : undefined;
}

function endpointAddressProblem(text: string): string | undefined {
  const withPort = /^(?:\[([^\]]*)\]|([0-9.]+)):[0-9]+$/.exec(text);
  if (withPort) return `${quote(text)} has a port; list only the address, e.g. ${quote(withPort[1] ?? withPort[2])} (every port of the peer is kept direct)`;
  const address = parseAddress(text);
  return address.ok ? undefined : `${quote(text)} ${address.message}; list the peer's endpoint IP address, e.g. "198.51.100.7"`;
}

function resolverProblem(text: string): string | undefined {
  const address = parseAddress(text);
  return address.ok ? undefined : `${quote(text)} ${address.message}; list the resolver's IP address, e.g. "10.253.0.1" (no port: resolvers answer on 53)`;
}

/** "~." (every name), "~corp.example" (a routing-only domain) or "corp.example" (a search and routing domain), as networkd's Domains= reads them. */
function dnsDomainProblem(text: string): string | undefined {
  const name = text.startsWith("~") ? text.slice(1) : text;
  if (name === ".") return text === "~." ? undefined : `"." alone is not a search domain; write "~." to send every query to tunnel.dns`;
  if (!HOSTNAME.test(name)) return `${quote(text)} is not a domain; write "~." (every name), "~corp.example" (only names under corp.example) or "corp.example" (also searched for single-label names)`;
  return undefined;
}

function canonicalAddress(text: string): string {
  const address = parseAddress(text);
  return address.ok ? formatAddress(address.value.family, address.value.value) : text;
}

function rangeProblem(what: string, min: number, max: number) {
  return (value: number | string): string | undefined => {
    const match = typeof value === "number" ? [String(value), String(value), undefined] : /^([0-9]+)(?:-([0-9]+))?$/.exec(value);
    if (!match) return `${quote(value)} is not ${what} or a range of them ("A-B")`;
    const low = Number(match[1]);
    const high = match[2] === undefined ? low : Number(match[2]);
    if (!Number.isInteger(low) || low < min || high > max) return `${quote(value)} is out of range for ${what}: ${min}..${max}`;
    if (high < low) return `${quote(value)} is an empty range; write the lower bound first`;
    return undefined;
  };
}

function absolutePathProblem(path: string): string | undefined {
  if (!path.startsWith("/")) return `${quote(path)} is not an absolute path; networkd needs one, e.g. "/etc/systemd/network/wg0.key"`;
  return undefined;
}

/** What each integer schema holds and its range ("a UDP port: 1..65535"), for messages about numbers no schema reads (BigInts). */
const INTEGER_RANGES = new WeakMap<z.ZodType, string>();

function integer(min: number, max: number, what: string) {
  const schema = z
    .number({ error: `expected a whole number (${what})` })
    .int({ error: `expected a whole number (${what})` })
    .min(min, { error: (issue) => `${quote(issue.input)} is out of range for ${what}: ${min}..${max}` })
    .max(max, { error: (issue) => `${quote(issue.input)} is out of range for ${what}: ${min}..${max}` });
  INTEGER_RANGES.set(schema, `${what}: ${min}..${max}`);
  return schema;
}

const port = integer(1, 65535, "a UDP port");

const peerSchema = z.strictObject({
  public_key: checkedString(wireguardKeyProblem),
  endpoint: checkedString(endpointProblem).optional(),
  allowed_ips: z.array(checkedString(prefixProblem).transform(canonicalPrefixItem)).min(1, { error: "list at least one prefix, e.g. [\"0.0.0.0/0\", \"::/0\"]" }),
  persistent_keepalive: integer(1, 65535, "seconds between keepalives; omit the key to disable").optional(),
  preshared_key_file: checkedString(absolutePathProblem).optional(),
});

const tunnelSchema = z.strictObject({
  interface: checkedString(interfaceNameProblem),
  addresses: z
    .array(checkedString(interfaceAddressProblem).transform(canonicalInterfaceAddress))
    .min(1, { error: 'list at least one tunnel address, e.g. ["10.253.0.2/32"]' }),
  manage: z.boolean().default(true),
  private_key_file: checkedString(absolutePathProblem).optional(),
  listen_port: port.optional(),
  mtu: integer(1280, 65535, "the MTU (WireGuard over IPv6 needs at least 1280)").optional(),
  peers: z.array(peerSchema).optional(),
  /** manage = false only: the peers' endpoint addresses, so a UDP split can keep them direct. */
  endpoints: z.array(checkedString(endpointAddressProblem).transform(canonicalAddress)).optional(),
  /** Resolvers reached through the tunnel; systemd-resolved learns them from networkd as the tunnel link's DNS servers. */
  dns: z.array(checkedString(resolverProblem).transform(canonicalAddress)).min(1, { error: 'list at least one resolver address, e.g. ["10.253.0.1"], or omit the key' }).optional(),
  /** Which names those resolvers answer; ["~."] (every name) when omitted. */
  dns_domains: z.array(checkedString(dnsDomainProblem)).min(1, { error: 'list at least one domain, e.g. ["~."], or omit the key' }).optional(),
});

const tableSchema = integer(1, 4294967295, "a routing table").superRefine((table, ctx) => {
  const name = RESERVED_TABLES[table];
  if (name) ctx.addIssue({ code: "custom", message: `${table} is the kernel's "${name}" table; pick another, e.g. 10086` });
});
INTEGER_RANGES.set(tableSchema, "a routing table: 1..4294967295");

function protocolProblem(value: string | number): string | undefined {
  if (typeof value === "number") {
    // networkd and the kernel read IPProtocol=0 as "no protocol selector": the rule would capture
    // everything, the tunnel's own packets too, without the loop protection "all" gets.
    if (value === 0) return `0 matches every protocol in a routing rule (networkd and the kernel read it as "any"); write "all" to capture everything`;
    return Number.isInteger(value) && value >= 1 && value <= 255 ? undefined : `${value} is not an IP protocol number (1..255)`;
  }
  if (value === ALL_PROTOCOLS || (PROTOCOL_NAMES as readonly string[]).includes(value)) return undefined;
  const known = [...PROTOCOL_NAMES, ALL_PROTOCOLS];
  return `${quote(value)} is not a supported protocol${didYouMean(value, known)} (supported: ${known.join(", ")}, or a protocol number)`;
}

/** A uid, a port, or an "A-B" range of them; a whole number or a string. */
const numberOrRange = (what: string, min: number, max: number) => {
  const problem = rangeProblem(what, min, max);
  return z.union([z.number(), z.string()], { error: `expected ${what} (a number) or a range "A-B"` }).superRefine((value, ctx) => {
    const message = problem(value);
    if (message !== undefined) ctx.addIssue({ code: "custom", message });
  });
};

const prefixItem = checkedString(excludeItemProblem).transform(canonicalPrefixItem);

/** A prefix list file (format in src/prefix-list.ts), relative to the spec's directory; read after validation. */
const listFiles = z
  .array(checkedString((path) => (path === "" ? 'is empty; give the path of a prefix list file, relative to the spec, e.g. "lists/home-country.txt"' : undefined)))
  .min(1, { error: "list at least one prefix list file, or omit the key" })
  .optional();

const splitSchema = z.strictObject({
  table: tableSchema.default(10086),
  priority: integer(1 + HELPER_RULE_COUNT, 32765, "a rule priority (before main at 32766)").default(10086),
  protocols: z
    .array(z.union([z.string(), z.number()]).superRefine((value, ctx) => {
      const message = protocolProblem(value);
      if (message !== undefined) ctx.addIssue({ code: "custom", message });
    }))
    .min(1, { error: 'list at least one protocol, e.g. ["tcp"]' })
    .default(["tcp"]),
  include: z.array(prefixItem).optional(),
  exclude: z.array(prefixItem).default([LOCAL_SET]),
  include_files: listFiles,
  exclude_files: listFiles,
  sources: z.enum(["all", "local"], { error: (issue) => `${quote(issue.input)} is not a source selection; expected "all" (also forwarded traffic) or "local" (this host's own)` }).default("all"),
  users: z.array(numberOrRange("a uid", 0, 4294967294)).min(1, { error: "list at least one uid, or omit the key to capture every user" }).optional(),
  ports: z.array(numberOrRange("a port", 1, 65535)).min(1, { error: "list at least one port, or omit the key to capture every port" }).optional(),
  killswitch: z.boolean().default(false),
  killswitch_before: z.array(checkedString(serviceNameProblem)).min(1, { error: 'list at least one service, e.g. ["NetworkManager.service"], or omit the key' }).optional(),
  fwmark: integer(1, 4294967295, "a firewall mark").optional(),
  anchor: checkedString(interfaceNameProblem).optional(),
  ipv6: z.enum(["tunnel", "block", "direct"], { error: (issue) => `${quote(issue.input)} is not an IPv6 policy; expected "tunnel", "block" or "direct"` }).optional(),
  direct_connected: z.boolean().default(true),
  inbound: z.enum(["direct", "capture"], { error: (issue) => `${quote(issue.input)} is not an inbound policy; expected "direct" (replies leave through the link their connection came in on) or "capture" (replies are captured like any other traffic)` }).default("direct"),
});

export const specSchema = z
  .strictObject({
    $schema: z.string().optional().describe("Editor hint: the JSON Schema of this format; ignored by gen-networkd."),
    version: z.literal(SPEC_VERSION, {
      error: (issue) => (issue.input === undefined ? `is required; add version = ${SPEC_VERSION} at the top` : `${quote(issue.input)} is not a spec version this gen-networkd reads; expected ${SPEC_VERSION}`),
    }),
    tunnel: tunnelSchema,
    split: splitSchema.default(() => splitSchema.parse({})),
  })
  .superRefine((spec, ctx) => {
    const problem = (path: (string | number)[], message: string) => ctx.addIssue({ code: "custom", path, message });
    const { tunnel, split } = spec;
    const families = new Set(tunnel.addresses.map(addressFamily));
    if (families.size > 0 && !families.has(4)) problem(["tunnel", "addresses"], "needs an IPv4 address: IPv4 traffic is what the tunnel carries");
    if (split.ipv6 === "tunnel" && !families.has(6)) {
      problem(["split", "ipv6"], `"tunnel" needs an IPv6 address in tunnel.addresses; add one, or use "block" or "direct"`);
    }
    if (tunnel.manage) {
      if (tunnel.private_key_file === undefined) problem(["tunnel", "private_key_file"], "is required when manage = true (networkd creates the interface and needs its key)");
      if (!tunnel.peers?.length) problem(["tunnel", "peers"], "list at least one peer when manage = true");
      const seen = new Map<string, number>();
      tunnel.peers?.forEach((peer, index) => {
        const first = seen.get(peer.public_key);
        if (first !== undefined) problem(["tunnel", "peers", index, "public_key"], `duplicate peer: same public key as tunnel.peers[${first}]`);
        else seen.set(peer.public_key, index);
      });
    } else {
      for (const key of ["private_key_file", "listen_port", "peers"] as const) {
        if (tunnel[key] !== undefined) problem(["tunnel", key], "only applies with manage = true (gen-networkd then creates the WireGuard interface)");
      }
    }
    tunnel.dns?.forEach((resolver, index) => {
      if (resolverProblem(resolver) !== undefined) return; // reported already
      const family = addressFamily(resolver);
      if (!families.has(family)) problem(["tunnel", "dns", index], `${quote(resolver)} is an IPv${family} resolver, but tunnel.addresses has no IPv${family} address to reach it from through the tunnel`);
      for (const [peerIndex, peer] of (tunnel.peers ?? []).entries()) {
        // The tunnel's own packets to such an endpoint look like DNS queries to the resolver: no rule could tell them apart.
        if (peer.endpoint !== undefined && endpointHostPort(peer.endpoint) === `${resolver} 53`) {
          problem(["tunnel", "dns", index], `${quote(resolver)} is also tunnel.peers[${peerIndex}].endpoint on port 53: the tunnel's own packets could not be told apart from queries to the resolver; use the resolver's address inside the tunnel`);
        }
      }
    });
    if (tunnel.dns_domains !== undefined && tunnel.dns === undefined) problem(["tunnel", "dns_domains"], "only applies with tunnel.dns (the resolvers that answer those names)");
    const protocols = split.protocols;
    if (protocols.includes(ALL_PROTOCOLS) && protocols.length > 1) {
      problem(["split", "protocols"], `"all" already captures every protocol; list it alone`);
    }
    if (split.ports && !protocols.every((p) => PORTED_PROTOCOLS.has(p))) {
      problem(["split", "ports"], `ports only narrow tcp, udp and sctp; split.protocols also has ${protocols.filter((p) => !PORTED_PROTOCOLS.has(p)).map((p) => quote(p)).join(", ")}`);
    }
    if (capturesTunnelPackets(protocols)) {
      if (tunnel.manage) {
        const mark = tunnelFwmark(spec);
        if (mark & TAILSCALE_FWMARK_MASK) {
          problem(["split", split.fwmark === undefined ? "table" : "fwmark"], `the tunnel's firewall mark 0x${mark.toString(16)} (${split.fwmark === undefined ? "the table number, by default" : "split.fwmark"}) has bits under tailscale's mask 0xff0000 and would be taken for tailscale's own traffic; set split.fwmark to a value below 0x10000, e.g. 51820`);
        }
      } else if (!tunnel.endpoints?.length) {
        problem(["tunnel", "endpoints"], `split.protocols captures UDP, which would send the tunnel's own encrypted packets into the tunnel; with manage = false gen-networkd cannot mark them, so list the peers' endpoint addresses here (they are then kept direct)`);
      }
    } else if (split.fwmark !== undefined) {
      problem(["split", "fwmark"], "only used when split.protocols captures UDP (or \"all\"); remove it");
    }
    if (tunnel.manage && tunnel.endpoints !== undefined) {
      problem(["tunnel", "endpoints"], "only applies with manage = false (a managed tunnel marks its own packets instead)");
    }
    const anchor = anchorName(spec);
    if (interfaceNameProblem(tunnel.interface) !== undefined) {
      // The anchor's default name derives from the interface name, already reported.
    } else if (anchor === undefined) {
      problem(["split", "anchor"], `the default anchor name "${tunnel.interface}${ANCHOR_SUFFIX}" is longer than 15 bytes; set split.anchor to an interface name of your choice`);
    } else if (anchor === tunnel.interface) {
      problem(["split", "anchor"], `must differ from tunnel.interface: the anchor holds the policy while ${tunnel.interface} comes and goes`);
    }
    if (split.killswitch_before !== undefined) {
      if (!split.killswitch) problem(["split", "killswitch_before"], "only applies with killswitch = true (without it, traffic goes direct whenever the tunnel is not up, by design)");
      const seen = new Map<string, number>();
      split.killswitch_before.forEach((service, index) => {
        const first = seen.get(service);
        if (first !== undefined) problem(["split", "killswitch_before", index], `duplicate: ${quote(service)} is also split.killswitch_before[${first}]`);
        else seen.set(service, index);
      });
    }
    const lowest = split.priority - HELPER_RULE_COUNT;
    const highest = lastRulePriority(split);
    if (lowest <= TAILSCALE_PRIORITIES.last && highest >= TAILSCALE_PRIORITIES.first) {
      problem(["split", "priority"], `${split.priority} collides with tailscale's rules (${TAILSCALE_PRIORITIES.first}..${TAILSCALE_PRIORITIES.last}; ours use ${lowest}..${highest}); pick one above ${TAILSCALE_PRIORITIES.last + HELPER_RULE_COUNT}, e.g. 10086`);
    } else if (split.priority <= 32765 && highest > 32765) {
      problem(["split", "priority"], `${split.priority} leaves no room before main (32766) for the rules after it (ours use ${lowest}..${highest} with inbound = "direct"); pick one up to ${32765 - (highest - split.priority)}`);
    }
  });

export type Spec = z.output<typeof specSchema>;
type Protocol = Spec["split"]["protocols"][number];

/** The priority of the split's last rule: the capture rules', or the inbound rules after them. */
export function lastRulePriority(split: { priority: number; inbound: "direct" | "capture" }): number {
  return split.priority + (split.inbound === "direct" ? INBOUND_RULE_COUNT : 0);
}

/** Whether the capture rules would also match the tunnel's own encrypted UDP packets. */
export function capturesTunnelPackets(protocols: readonly Protocol[]): boolean {
  return protocols.some((p) => p === "udp" || p === 17 || p === ALL_PROTOCOLS);
}

/** The mark a managed tunnel puts on its own packets: split.fwmark, else the table number (as wg-quick does). */
export function tunnelFwmark(spec: { split: { fwmark?: number | undefined; table: number } }): number {
  return spec.split.fwmark ?? spec.split.table;
}

export const ANCHOR_SUFFIX = "-split";

/** The always-present link that carries the policy; undefined when the default name would be too long. */
export function anchorName(spec: { tunnel: { interface: string }; split: { anchor?: string | undefined } }): string | undefined {
  const name = spec.split.anchor ?? `${spec.tunnel.interface}${ANCHOR_SUFFIX}`;
  return Buffer.byteLength(name) <= 15 ? name : undefined;
}

/** The routing domains of tunnel.dns: tunnel.dns_domains, else every name. */
export const DEFAULT_DNS_DOMAINS = ["~."] as const;

export function dnsDomains(spec: { tunnel: { dns_domains?: string[] | undefined } }): readonly string[] {
  return spec.tunnel.dns_domains ?? DEFAULT_DNS_DOMAINS;
}

export function addressFamily(interfaceAddress: string): Family {
  return interfaceAddress.includes(":") ? 6 : 4;
}

// Keys that must never hold key material inline: the spec would then be a secret,
// and the key would be copied into emitted files.
const INLINE_SECRET_KEYS: Record<string, string> = {
  private_key: "private_key_file",
  preshared_key: "preshared_key_file",
};

/** A key as a path shows it: plain when it is a word, else quoted and escaped (it may hold any character). */
const pathKey = (key: string) => (/^[A-Za-z0-9_$-]{1,80}$/.test(key) ? key : `[${quoteText(key)}]`);

function formatPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(top level)";
  return path.reduce<string>((out, key) => {
    if (typeof key === "number") return `${out}[${key}]`;
    const shown = pathKey(String(key));
    return shown.startsWith("[") || !out ? `${out}${shown}` : `${out}.${shown}`;
  }, "");
}

/** What an invisible character (see INVISIBLE) is, for the message. */
function invisibleName(c: string): string {
  const code = `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;
  if (c === "\n") return "a newline";
  if (/\p{Cc}/u.test(c)) return `control character ${code}`;
  if (c === "\u2028") return `the line separator ${code}`;
  if (c === "\u2029") return `the paragraph separator ${code}`;
  if (/\p{Cs}/u.test(c)) return `a lone surrogate ${code} (it has no UTF-8 form)`;
  return `format character ${code} (invisible, or it reorders the text around it)`;
}

/**
 * What systemd (or a reader of the file) would take differently from the spec: values are
 * written into INI files, whose lines end at control characters (and, for some readers, at
 * Unicode line separators), which strip whitespace around values, and which continue a line
 * ending in an odd number of backslashes.
 */
function iniValueProblem(value: string): string | undefined {
  const invisible = INVISIBLE.exec(value);
  if (invisible) return `${quote(value)} contains ${invisibleName(invisible[0])}; values are written into INI files, where that would inject lines or show a different value`;
  if (/^\s/.test(value)) return `${quote(value)} starts with whitespace, which systemd strips; remove it`;
  if (/\s$/.test(value)) return `${quote(value)} ends in whitespace, which systemd strips; remove it`;
  if (continuesLine(value)) return `${quote(value)} ends in a backslash, which systemd reads as a line continuation (it would swallow the next line); remove it`;
  return undefined;
}

/** Deeper than any spec (tunnel.peers[0].allowed_ips[0] is 4 levels), far below what recursion would choke on. */
export const MAX_DEPTH = 16;

/**
 * Every string of the document that systemd would read differently (iniValueProblem), and
 * where the document nests deeper than MAX_DEPTH. Walked with a stack of its own: a document
 * may nest thousands deep, and nothing else reads so deep (the schema stops at its own depth).
 */
function documentProblems(document: unknown, out: SpecProblem[]): void {
  const stack: { value: unknown; path: PropertyKey[] }[] = [{ value: document, path: [] }];
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    if (typeof value === "string") {
      const message = iniValueProblem(value);
      if (message !== undefined) out.push({ path: formatPath(path), message });
    } else if (value !== null && typeof value === "object") {
      if (path.length === MAX_DEPTH) {
        out.push({ path: formatPath(path), message: `nested more than ${MAX_DEPTH} levels deep; no key of a spec is deeper than 4 (e.g. tunnel.peers[0].allowed_ips[0])` });
        continue;
      }
      const items = Array.isArray(value) ? value.map((item, index) => [index, item] as const) : Object.entries(value);
      for (let i = items.length - 1; i >= 0; i--) stack.push({ value: items[i]![1], path: [...path, items[i]![0]] });
    }
  }
}

type SchemaDef = { type: string; innerType?: z.ZodType; in?: z.ZodType; element?: z.ZodType; shape?: Record<string, z.ZodType> };
const defOf = (schema: z.ZodType) => (schema as unknown as { def: SchemaDef }).def;

/** The schema found at a path of the input (optional, default and transform wrappers removed), if the path is in the schema. */
function schemaAt(path: readonly PropertyKey[]): z.ZodType | undefined {
  let schema: z.ZodType = specSchema;
  for (const key of [...path, undefined]) {
    for (let def = defOf(schema); def.innerType || (def.type === "pipe" && def.in); def = defOf(schema)) schema = def.innerType ?? def.in!;
    if (key === undefined) return schema;
    const def = defOf(schema);
    if (typeof key === "number" && def.element) schema = def.element;
    else if (def.shape && typeof key === "string" && Object.hasOwn(def.shape, key)) schema = def.shape[key]!;
    else return undefined;
  }
  return undefined;
}

/** The keys of the object schema at a path of the input, to list them in a message. */
function objectKeysAt(path: readonly PropertyKey[]): string[] {
  const schema = schemaAt(path);
  const shape = schema && defOf(schema).shape;
  return shape ? Object.keys(shape) : [];
}

/** " for a UDP port: 1..65535" when the path holds one of the spec's integers (see integer()). */
function rangeOf(path: readonly PropertyKey[]): string {
  const schema = schemaAt(path);
  const range = schema && INTEGER_RANGES.get(schema);
  return range === undefined ? "" : ` for ${range}`;
}

/**
 * A key unknown where it is but known to an enclosing table: in TOML, every key after a table
 * header belongs to that table, so a key written after [[tunnel.peers]] or [split] that means
 * [tunnel] or the top level is in the wrong place, not misspelt.
 */
function misplacedKeyHint(path: readonly PropertyKey[], key: string): string {
  for (let depth = path.length - 1; depth >= 0; depth--) {
    const outer = path.slice(0, depth);
    if (!objectKeysAt(outer).includes(key)) continue;
    const inner = path.filter((p) => typeof p === "string").join(".");
    const header = typeof path.at(-1) === "number" ? `[[${inner}]]` : `[${inner}]`;
    const owner = outer.length === 0 ? "the top level" : `[${formatPath(outer)}]`;
    return `; ${quote(key)} is a key of ${owner}: keys after ${header} belong to that ${typeof path.at(-1) === "number" ? "peer" : "table"}, so move it above the first ${header}`;
  }
  return "";
}

function issueProblems(issue: z.core.$ZodIssue): SpecProblem[] {
  if (issue.code === "unrecognized_keys") {
    const known = objectKeysAt(issue.path);
    return issue.keys.map((key) => {
      const path = formatPath([...issue.path, key]);
      const secret = Object.hasOwn(INLINE_SECRET_KEYS, key) ? INLINE_SECRET_KEYS[key] : undefined;
      if (secret) {
        return { path, message: `inline keys are refused (they would be copied into generated files); write the key to a file readable by systemd-network and set ${formatPath([...issue.path, secret])}` };
      }
      return { path, message: `unknown key${didYouMean(key, known)}${known.length ? ` (known here: ${known.join(", ")})` : ""}${misplacedKeyHint(issue.path, key)}` };
    });
  }
  if (issue.code === "invalid_type") {
    // TOML integers of 2^53 and more are BigInts; every number of a spec is far smaller.
    if (typeof issue.input === "bigint") return [{ path: formatPath(issue.path), message: `${issue.input} is out of range${rangeOf(issue.path)}` }];
    const expected = issue.expected === "int" ? "number" : issue.expected;
    const noun = expected === "object" ? "a table/object" : `${/^[aeiou]/.test(expected) ? "an" : "a"} ${expected}`;
    if (issue.input === undefined) return [{ path: formatPath(issue.path), message: `is required (expected ${noun})` }];
    const got = Array.isArray(issue.input) ? "an array" : issue.input === null ? "null" : quote(issue.input);
    if (typeof issue.input !== expected || Array.isArray(issue.input) || issue.input === null) return [{ path: formatPath(issue.path), message: `expected ${noun}, got ${got}` }];
  }
  return [{ path: formatPath(issue.path), message: issue.message }];
}

export type Validated = { ok: true; spec: Spec } | { ok: false; problems: SpecProblem[] };

/** Validates a parsed spec document; reports every problem at once, each with its JSON path. */
export function validateSpec(input: unknown): Validated {
  const problems: SpecProblem[] = [];
  documentProblems(input, problems);
  const result = specSchema.safeParse(input, { reportInput: true });
  if (result.success && problems.length === 0) return { ok: true, spec: result.data };
  if (!result.success) {
    const flagged = new Set(problems.map((p) => p.path));
    for (const issue of result.error.issues) {
      for (const problem of issueProblems(issue)) if (!flagged.has(problem.path)) problems.push(problem);
    }
  }
  return { ok: false, problems };
}

/** The JSON Schema of the spec, derived from the same definition that validates. */
export function specJsonSchema(): unknown {
  return z.toJSONSchema(specSchema, { io: "input", unrepresentable: "any" });
}
