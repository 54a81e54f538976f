// Types of bench/synthetic.mjs for the tests that use its lists (type-checked with tsc -p test/lab).

/** A seeded PRNG: each call returns the next number in [0, 1). */
export function random(seed: number): () => number;
/** `count` random IPv4 prefixes (CIDR or bare address lines). */
export function ipv4List(count: number, seed: number): string[];
/** `count` random IPv6 prefixes (CIDR or bare address lines). */
export function ipv6List(count: number, seed: number): string[];
/** A country-shaped list: a comment header, ~8,000 IPv4 then ~2,000 IPv6 lines. */
export function countryList(seed: number): string[];
