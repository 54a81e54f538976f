// Random valid specs (version 1), as a user would write them in JSON.
//
// Covers every key of the format: managed and unmanaged tunnels, one or two
// address families, peers with and without optional keys, exclusions mixing named
// sets and prefixes, every IPv6 policy the spec allows. Interface names use
// characters that mean something to Nix and to unit files, since they reach
// file names, attribute names and values.
import fc from "fast-check";
import { namedSetNames } from "../../src/named-sets.js";

const ipv4Prefix = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 1, max: 32 })).map(([address, length]) => {
  const network = length === 32 ? address : address & ~((1 << (32 - length)) - 1) & 0xffffffff;
  const octets = [24, 16, 8, 0].map((shift) => ((network >>> 0) >>> shift) & 0xff);
  return `${octets.join(".")}/${length}`;
});
const ipv6Prefix = fc.integer({ min: 1, max: 0xffff }).map((n) => `2001:db8:${n.toString(16)}::/48`);

// Linux allows any byte but '/', ':' and whitespace; these are the ones that need escaping somewhere.
const interfaceName = fc
  .array(fc.constantFrom(..."wgtun0123-_", '"', "$", "{", "}", "\\", "'", "#", ";", "="), { minLength: 1, maxLength: 15 })
  .map((chars) => chars.join(""))
  .filter((name) => name !== "." && name !== "..");

const publicKey = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => Buffer.from(bytes).toString("base64"));
const port = fc.integer({ min: 1, max: 65535 });
const endpoint = fc.oneof(
  fc.tuple(fc.integer({ min: 1, max: 223 }), fc.integer({ min: 0, max: 255 }), port).map(([a, b, p]) => `${a}.${b}.0.7:${p}`),
  fc.tuple(fc.integer({ min: 1, max: 0xffff }), port).map(([n, p]) => `[2001:db8::${n.toString(16)}]:${p}`),
  fc.tuple(fc.constantFrom("vpn.example.org", "wg.example.net"), port).map(([h, p]) => `${h}:${p}`),
);
const keyFile = fc.constantFrom("/etc/systemd/network/wg0.key", "/run/agenix/wg-key", "/run/secrets/wireguard/private key");

const peer = fc.record(
  {
    public_key: publicKey,
    endpoint,
    allowed_ips: fc.uniqueArray(fc.oneof(fc.constantFrom("0.0.0.0/0", "::/0"), ipv4Prefix, ipv6Prefix), { minLength: 1, maxLength: 4 }),
    persistent_keepalive: fc.integer({ min: 1, max: 65535 }),
    preshared_key_file: keyFile,
  },
  { requiredKeys: ["public_key", "allowed_ips"] },
);

const tunnel = fc
  .record({
    interface: interfaceName,
    ipv4: fc.tuple(fc.integer({ min: 1, max: 254 }), fc.integer({ min: 1, max: 254 }), fc.constantFrom(32, 24, 16)),
    ipv6: fc.option(fc.integer({ min: 1, max: 0xffff }), { nil: undefined }),
    manage: fc.boolean(),
    private_key_file: keyFile,
    listen_port: fc.option(port, { nil: undefined }),
    mtu: fc.option(fc.integer({ min: 1280, max: 65535 }), { nil: undefined }),
    peers: fc.uniqueArray(peer, { minLength: 1, maxLength: 3, selector: (p) => p.public_key }),
  })
  .map(({ interface: name, ipv4: [b, c, length], ipv6, manage, private_key_file, listen_port, mtu, peers }) => ({
    interface: name,
    addresses: [`10.${b}.${c}.2/${length}`, ...(ipv6 === undefined ? [] : [`fd00:${ipv6.toString(16)}::2/128`])],
    manage,
    ...(mtu === undefined ? {} : { mtu }),
    ...(manage ? { private_key_file, peers, ...(listen_port === undefined ? {} : { listen_port }) } : {}),
  }));

const split = fc.record(
  {
    table: fc.integer({ min: 1, max: 4294967295 }).filter((t) => t < 253 || t > 255),
    // Clear of tailscale's 5210..5270 (with our helper rule one below) and of main at 32766.
    priority: fc.oneof(fc.integer({ min: 2, max: 5209 }), fc.integer({ min: 5272, max: 32765 })),
    exclude: fc.uniqueArray(fc.oneof(fc.constantFrom(...namedSetNames()), ipv4Prefix, ipv6Prefix), { maxLength: 6 }),
    ipv6: fc.constantFrom("tunnel", "block", "direct"),
    direct_connected: fc.boolean(),
  },
  { requiredKeys: [] },
);

/** A valid spec document (the parsed JSON), with the spec's defaults left out at random. */
export const validSpec = fc
  .tuple(tunnel, split)
  .map(([t, s]) => {
    const hasIpv6 = t.addresses.length > 1;
    // "tunnel" needs an IPv6 tunnel address; without one, fall back to the default.
    const { ipv6, ...rest } = s;
    const usable = ipv6 === "tunnel" && !hasIpv6 ? {} : ipv6 === undefined ? {} : { ipv6 };
    return { version: 1, tunnel: t, split: { ...rest, ...usable } };
  });
