// Named destination sets usable in split.exclude (and split.include).
//
// Each is a fixed list, documented in the README, so a spec that says "@local"
// means the same thing on every machine and in every version of a review.

export const NAMED_SETS: Readonly<Record<string, readonly string[]>> = {
  "@rfc1918": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
  "@ula": ["fc00::/7"],
  // Carrier-grade NAT space; tailscale's IPv4 addresses live here too.
  "@cgnat": ["100.64.0.0/10"],
  "@tailscale": ["100.64.0.0/10", "fd7a:115c:a1e0::/48"],
  "@link-local": ["169.254.0.0/16", "fe80::/10"],
  "@loopback": ["127.0.0.0/8", "::1/128"],
  "@multicast": ["224.0.0.0/4", "ff00::/8"],
  "@broadcast": ["255.255.255.255/32"],
};

// "@local": everything above, i.e. every destination that is never "the internet".
export const LOCAL_SET = "@local";

export function namedSet(name: string): readonly string[] | undefined {
  if (name === LOCAL_SET) return Object.values(NAMED_SETS).flat();
  return Object.hasOwn(NAMED_SETS, name) ? NAMED_SETS[name] : undefined;
}

export function namedSetNames(): string[] {
  return [...Object.keys(NAMED_SETS), LOCAL_SET];
}
