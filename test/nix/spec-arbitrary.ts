// Random valid specs (version 1), as a user would write them in JSON.
//
// Covers the keys of the format: managed and unmanaged tunnels, one or two
// address families, peers with and without optional keys, every protocol
// selection (with the loop protection UDP needs: a firewall mark or endpoint
// addresses), includes and excludes mixing named sets and prefixes, sources,
// users, ports, the kill switch, the anchor, every IPv6 policy the spec allows.
// Interface names use characters that mean something to Nix and to unit files,
// since they reach file names, attribute names and values. (List files are left
// out: they are read relative to a spec on disk.)
//
// Rules that span several keys are followed here rather than filtered, so nearly
// every generated document is valid; the tests still check it, and `generatable`
// drops the rare spec whose includes its excludes swallow whole (the planner
// refuses those with a clear error).
import fc from "fast-check";
import { namedSetNames } from "../../src/named-sets.js";
import { buildPlan, PlanError } from "../../src/plan.js";
import { ANCHOR_SUFFIX, HELPER_RULE_COUNT, INBOUND_RULE_COUNT, PROTOCOL_NAMES, TAILSCALE_PRIORITIES, validateSpec, type Spec } from "../../src/spec.js";

const ipv4Prefix = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 1, max: 32 })).map(([address, length]) => {
  const network = length === 32 ? address : (address & ~((1 << (32 - length)) - 1)) >>> 0;
  const octets = [24, 16, 8, 0].map((shift) => (network >>> shift) & 0xff);
  return `${octets.join(".")}/${length}`;
});
const ipv6Prefix = fc.integer({ min: 1, max: 0xffff }).map((n) => `2001:db8:${n.toString(16)}::/48`);
const prefix = fc.oneof(ipv4Prefix, ipv6Prefix);

// The spec allows letters, digits, '-', '_' and '.' (networkd reads Name= as globs); hostile
// strings reach the Nix escaper through other values and through test/nix/escape.test.ts.
// At most 15 bytes with the anchor's default suffix, unless the spec names its anchor.
const nameChars = fc.constantFrom(..."wgtun0123-_.");
const interfaceName = (maxLength: number) =>
  fc
    .array(nameChars, { minLength: 1, maxLength })
    .map((chars) => chars.join(""))
    .filter((name) => name !== "." && name !== "..");

const publicKey = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => Buffer.from(bytes).toString("base64"));
const port = fc.integer({ min: 1, max: 65535 });
const endpoint = fc.oneof(
  fc.tuple(fc.integer({ min: 1, max: 223 }), fc.integer({ min: 0, max: 255 }), port).map(([a, b, p]) => `${a}.${b}.0.7:${p}`),
  fc.tuple(fc.integer({ min: 1, max: 0xffff }), port).map(([n, p]) => `[2001:db8::${n.toString(16)}]:${p}`),
  fc.tuple(fc.constantFrom("vpn.example.org", "wg.example.net"), port).map(([h, p]) => `${h}:${p}`),
);
const endpointAddress = fc.oneof(
  fc.tuple(fc.integer({ min: 1, max: 223 }), fc.integer({ min: 0, max: 255 })).map(([a, b]) => `${a}.${b}.0.7`),
  fc.integer({ min: 1, max: 0xffff }).map((n) => `2001:db8::${n.toString(16)}`),
);
const keyFile = fc.constantFrom("/etc/systemd/network/wg0.key", "/run/agenix/wg-key", "/run/secrets/wireguard/private key");

const peer = fc.record(
  {
    public_key: publicKey,
    endpoint,
    allowed_ips: fc.uniqueArray(fc.oneof(fc.constantFrom("0.0.0.0/0", "::/0"), prefix), { minLength: 1, maxLength: 4 }),
    persistent_keepalive: fc.integer({ min: 1, max: 65535 }),
    preshared_key_file: keyFile,
  },
  { requiredKeys: ["public_key", "allowed_ips"] },
);

const protocols = fc.oneof(
  { weight: 5, arbitrary: fc.uniqueArray(fc.oneof(fc.constantFrom(...PROTOCOL_NAMES), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 3 }) },
  { weight: 1, arbitrary: fc.constant(["all"]) },
);
const PORTED = new Set<unknown>(["tcp", "udp", "sctp", 6, 17, 132]);
const capturesUdp = (list: readonly unknown[]) => list.some((p) => p === "udp" || p === 17 || p === "all");
const numberOrRange = (min: number, max: number) =>
  fc.oneof(
    fc.integer({ min, max }),
    fc.tuple(fc.integer({ min, max }), fc.integer({ min, max })).map(([a, b]) => `${Math.min(a, b)}-${Math.max(a, b)}`),
  );

const optional = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined });
/** Leaves a key out when its value is undefined, as a user who omits it would. */
const present = (entries: Record<string, unknown>) => Object.fromEntries(Object.entries(entries).filter(([, v]) => v !== undefined));

export const validSpec = fc
  .record({
    namedAnchor: optional(interfaceName(15)),
    ipv4: fc.tuple(fc.integer({ min: 1, max: 254 }), fc.integer({ min: 1, max: 254 }), fc.constantFrom(32, 24, 16)),
    ipv6: optional(fc.integer({ min: 1, max: 0xffff })),
    // Left out, it defaults to true.
    manage: optional(fc.boolean()),
    private_key_file: keyFile,
    listen_port: optional(port),
    mtu: optional(fc.integer({ min: 1280, max: 65535 })),
    peers: fc.uniqueArray(peer, { minLength: 1, maxLength: 3, selector: (p) => p.public_key }),
    endpoints: fc.uniqueArray(endpointAddress, { minLength: 1, maxLength: 2 }),
    table: optional(fc.integer({ min: 1, max: 4294967295 }).filter((t) => t < 253 || t > 255)),
    // Clear of tailscale's 5210..5270 (with our helper rules just below, the inbound rules just after) and of main at 32766.
    priority: optional(
      fc.oneof(
        fc.integer({ min: 1 + HELPER_RULE_COUNT, max: TAILSCALE_PRIORITIES.first - 1 - INBOUND_RULE_COUNT }),
        fc.integer({ min: TAILSCALE_PRIORITIES.last + 1 + HELPER_RULE_COUNT, max: 32765 - INBOUND_RULE_COUNT }),
      ),
    ),
    protocols: optional(protocols),
    // Below tailscale's mask 0xff0000.
    fwmark: fc.integer({ min: 1, max: 0xffff }),
    include: optional(fc.uniqueArray(prefix, { minLength: 1, maxLength: 3 })),
    exclude: optional(fc.uniqueArray(fc.oneof(fc.constantFrom(...namedSetNames()), prefix), { maxLength: 6 })),
    sources: optional(fc.constantFrom("all", "local")),
    users: optional(fc.array(numberOrRange(0, 4294967294), { minLength: 1, maxLength: 3 })),
    ports: optional(fc.array(numberOrRange(1, 65535), { minLength: 1, maxLength: 3 })),
    killswitch: optional(fc.boolean()),
    killswitchBefore: optional(fc.uniqueArray(fc.constantFrom("NetworkManager.service", "networking.service", "systemd-networkd-wait-online.service", "getty@tty1.service"), { minLength: 1, maxLength: 2 })),
    ipv6Policy: optional(fc.constantFrom("tunnel", "block", "direct")),
    direct_connected: optional(fc.boolean()),
    inbound: optional(fc.constantFrom("direct", "capture")),
  })
  .chain((r) =>
    interfaceName(r.namedAnchor === undefined ? 15 - ANCHOR_SUFFIX.length : 15)
      .filter((name) => name !== r.namedAnchor)
      .map((name) => ({ ...r, name })),
  )
  .map((r) => {
    const list = r.protocols ?? ["tcp"];
    const udp = capturesUdp(list);
    const managed = r.manage ?? true;
    const tunnel = present({
      interface: r.name,
      addresses: [`10.${r.ipv4[0]}.${r.ipv4[1]}.2/${r.ipv4[2]}`, ...(r.ipv6 === undefined ? [] : [`fd00:${r.ipv6.toString(16)}::2/128`])],
      manage: r.manage,
      mtu: r.mtu,
      ...(managed
        ? { private_key_file: r.private_key_file, peers: r.peers, listen_port: r.listen_port }
        : // Capturing UDP would loop the tunnel's own packets; unmanaged, only the endpoints' addresses can prevent it.
          { endpoints: udp ? r.endpoints : undefined }),
    });
    const split = present({
      table: r.table,
      priority: r.priority,
      protocols: r.protocols,
      // A managed tunnel marks its own packets; the default mark (the table number) may collide with tailscale's.
      fwmark: udp && managed ? r.fwmark : undefined,
      include: r.include,
      exclude: r.exclude,
      sources: r.sources,
      users: r.users,
      ports: list.every((p) => PORTED.has(p)) ? r.ports : undefined,
      killswitch: r.killswitch,
      // Only with the kill switch: ordering a service after it means nothing otherwise.
      killswitch_before: r.killswitch ? r.killswitchBefore : undefined,
      anchor: r.namedAnchor,
      // "tunnel" needs an IPv6 tunnel address; without one, leave the default.
      ipv6: r.ipv6Policy === "tunnel" && r.ipv6 === undefined ? undefined : r.ipv6Policy,
      direct_connected: r.direct_connected,
      inbound: r.inbound,
    });
    return { version: 1, tunnel, split };
  });

/** The validated spec, or undefined when the planner refuses it (its includes lie wholly inside its excludes). */
export function generatable(document: unknown): Spec | undefined {
  const validated = validateSpec(document);
  if (!validated.ok) throw new Error(`the arbitrary made an invalid spec: ${JSON.stringify(validated.problems)}\n${JSON.stringify(document)}`);
  try {
    buildPlan(validated.spec, { prefix: "50" });
    return validated.spec;
  } catch (error) {
    if (error instanceof PlanError) return undefined;
    throw error;
  }
}
