// Reproducible synthetic prefix lists for the benchmark and the reference test.
//
// Prefix lengths follow the rough shape of real lists: IPv4 mostly /24 with a
// tail of shorter prefixes and some single addresses (as in blocklists); IPv6
// mostly /32../48 with some /64 and single addresses. Networks are random, so
// there are duplicates, nested and adjacent prefixes in proportion to density.

/** mulberry32: a small, fast, seeded PRNG, so every run writes the same lists. */
export function random(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Picks from [value, weight] pairs. */
function weighted(rand, table) {
  const total = table.reduce((sum, [, w]) => sum + w, 0);
  let x = rand() * total;
  for (const [value, w] of table) {
    if ((x -= w) < 0) return value;
  }
  return table.at(-1)[0];
}

const IPV4_LENGTHS = [[8, 0.0015], [12, 0.05], [14, 0.2], [16, 1.3], [17, 0.8], [18, 1.2], [19, 2.5], [20, 4], [21, 5], [22, 10], [23, 10], [24, 55], [28, 0.75], [32, 9]];
const IPV6_LENGTHS = [[29, 5], [32, 15], [36, 5], [40, 5], [44, 8], [48, 42], [56, 5], [64, 8], [128, 7]];

function ipv4(value) {
  return `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

/** A line for an IPv4 prefix inside [base, base + span); /32 as a bare address, like many lists. */
function ipv4Line(rand, base, span, length) {
  const size = 2 ** (32 - length);
  const network = base + Math.floor((rand() * span) / size) * size;
  return length === 32 ? ipv4(network) : `${ipv4(network)}/${length}`;
}

function ipv6Line(rand, length) {
  // Global unicast 2000::/3; random groups, host bits cleared, uncompressed lowercase text.
  const groups = Array.from({ length: 8 }, (_, i) => (i === 0 ? 0x2000 + Math.floor(rand() * 0x2000) : Math.floor(rand() * 65536)));
  for (let bit = length; bit < 128; bit++) groups[bit >> 4] &= ~(0x8000 >> (bit & 15));
  const text = groups.map((g) => g.toString(16)).join(":");
  return length === 128 ? text : `${text}/${length}`;
}

/** `count` random IPv4 prefixes spread over the public unicast space (1.0.0.0 - 223.255.255.255). */
export function ipv4List(count, seed) {
  const rand = random(seed);
  const lines = [];
  for (let i = 0; i < count; i++) lines.push(ipv4Line(rand, 2 ** 24, 223 * 2 ** 24, weighted(rand, IPV4_LENGTHS)));
  return lines;
}

export function ipv6List(count, seed) {
  const rand = random(seed);
  const lines = [];
  for (let i = 0; i < count; i++) lines.push(ipv6Line(rand, weighted(rand, IPV6_LENGTHS)));
  return lines;
}

/**
 * Shaped like a country list: ~8,000 IPv4 prefixes clustered in a few dozen
 * allocations (so many are adjacent and merge), then ~2,000 IPv6 prefixes, with
 * a comment header the way published lists have one.
 */
export function countryList(seed) {
  const rand = random(seed);
  const lines = ["# synthetic country list (made up; seeded)", ""];
  const blocks = Array.from({ length: 40 }, () => Math.floor(rand() * 200 + 2) * 2 ** 24 + Math.floor(rand() * 4) * 2 ** 22);
  for (let i = 0; i < 8000; i++) {
    const base = blocks[Math.floor(rand() * blocks.length)];
    lines.push(ipv4Line(rand, base, 2 ** 22, weighted(rand, [[16, 1], [18, 2], [19, 3], [20, 6], [21, 8], [22, 15], [23, 15], [24, 50]])));
  }
  lines.push("", "# IPv6");
  for (let i = 0; i < 2000; i++) lines.push(ipv6Line(rand, weighted(rand, [[29, 10], [32, 40], [36, 10], [40, 10], [44, 10], [48, 20]])));
  return lines;
}
