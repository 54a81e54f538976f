import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import {
  AddressSet,
  containsAddress,
  formatAddress,
  formatPrefix,
  parseAddress,
  parsePrefix,
  type Family,
  type Prefix,
} from "../src/prefix.js";
import { prefixOf } from "./prefix-of.js";

const texts = (ps: readonly Prefix[]) => ps.map(formatPrefix);

// The set operations on lists of prefixes, as the assertions below read best.
/** The unique minimal CIDR cover of the union: IPv4 first, then IPv6, each in address order. */
const aggregate = (prefixes: Iterable<Prefix>) => AddressSet.of(prefixes).prefixes();
/** The minimal CIDR cover of the addresses in `from` but not in `remove`. */
const subtract = (from: readonly Prefix[], remove: readonly Prefix[]) => AddressSet.of(from).minus(AddressSet.of(remove)).prefixes();
/** The minimal CIDR cover of the family's whole space minus the set (other families ignored). */
const complement = (prefixes: readonly Prefix[], family: Family) => AddressSet.of(prefixes).complement(family).prefixes();

// ---------------------------------------------------------------------------
// Parsing: every input another tool might read differently is an error.

const bad: [string, string, string?][] = [
  ["", "is empty"],
  ["256.0.0.0/8", "IPv4 part 256 is out of range (0-255)"],
  ["1.2.3.1000/32", "IPv4 part 1000 is out of range (0-255)"],
  ["10.0.0.0/33", "prefix length 33 is out of range for IPv4 (0-32)"],
  ["::/129", "prefix length 129 is out of range for IPv6 (0-128)"],
  ["10.0.0.0/99999999999999999999", "prefix length 99999999999999999999 is out of range for IPv4 (0-32)"],
  ["010.0.0.0/8", "IPv4 part 010 has a leading zero (octal or decimal?)", 'did you mean "10.0.0.0/8"?'],
  ["10.0.0.00/8", "IPv4 part 00 has a leading zero (octal or decimal?)", 'did you mean "10.0.0.0/8"?'],
  ["10.0.0.0/", "has an empty prefix length"],
  ["::/", "has an empty prefix length"],
  ["10.0.0.0/+8", "has a bad prefix length (expected a decimal number without sign or leading zeros)"],
  ["10.0.0.0/-8", "has a bad prefix length (expected a decimal number without sign or leading zeros)"],
  ["10.0.0.0/08", "has a bad prefix length (expected a decimal number without sign or leading zeros)"],
  ["10.0.0.0/8/8", "has a bad prefix length (expected a decimal number without sign or leading zeros)"],
  ["10.0.0.0/0x8", "has a bad prefix length (expected a decimal number without sign or leading zeros)"],
  ["1.2.3/8", "is not an IPv4 address (expected 4 decimal parts separated by dots)"],
  ["1.2.3.4.5/32", "is not an IPv4 address (expected 4 decimal parts separated by dots)"],
  ["1..2.3/32", "is not an IPv4 address (expected 4 decimal parts separated by dots)"],
  ["0x0a.0.0.0/8", "is not an IPv4 address (expected 4 decimal parts separated by dots)"],
  ["10.0.0.1", "has no prefix length", 'did you mean "10.0.0.1/32" (a single address)?'],
  ["10.0.0.1/8", "has host bits set", 'did you mean "10.0.0.0/8"?'],
  ["2001:db8::1/32", "has host bits set", 'did you mean "2001:db8::/32"?'],
  [" 10.0.0.0/8", "contains whitespace"],
  ["10.0.0.0/8\n", "contains whitespace"],
  ["10.0.0.0 /8", "contains whitespace"],
  [":::/0", 'is not an IPv6 address (empty group; only one "::" may stand for zero groups)'],
  [":1::/64", 'is not an IPv6 address (empty group; only one "::" may stand for zero groups)'],
  ["1::2::3/64", 'is not an IPv6 address ("::" may appear only once)'],
  ["1:2:3:4:5:6:7/112", 'is not an IPv6 address (7 groups; 8 expected, or use "::")'],
  ["1:2:3:4:5:6:7:8:9/128", 'is not an IPv6 address (9 groups; 8 expected, or use "::")'],
  ["1:2:3:4::5:6:7:8/128", 'is not an IPv6 address (8 groups plus "::"; at most 7 with "::")'],
  ["12345::/16", 'is not an IPv6 address (group "12345" is not 1-4 hex digits)'],
  ["fe80::1%eth0/128", 'is not an IPv6 address (group "1%eth0" is not 1-4 hex digits)'],
  ["::1.2.3/128", 'is not an IPv6 address (IPv4 tail "1.2.3": expected 4 decimal parts separated by dots)'],
  ["1.2.3.4::/128", 'is not an IPv6 address (group "1.2.3.4" is not 1-4 hex digits)'],
  ["::256.0.0.0/128", `is not an IPv6 address (IPv4 tail "256.0.0.0": IPv4 part 256 is out of range (0-255))`],
  ["abc", "is not an IPv4 or IPv6 prefix"],
  ["/8", "is empty"],
];

for (const [input, message, hint] of bad) {
  test(`parsePrefix rejects ${JSON.stringify(input)}`, () => {
    const parsed = parsePrefix(input);
    assert.equal(parsed, hint === undefined ? { ok: false, message } : { ok: false, message, hint });
  });
}

const good: [string, string][] = [
  ["0.0.0.0/0", "0.0.0.0/0"],
  ["10.0.0.0/8", "10.0.0.0/8"],
  ["255.255.255.255/32", "255.255.255.255/32"],
  ["0.0.0.0/32", "0.0.0.0/32"],
  ["::/0", "::/0"],
  ["::1/128", "::1/128"],
  ["2001:DB8::/32", "2001:db8::/32"],
  ["2001:0db8:0000:0000:0000:0000:0000:0000/32", "2001:db8::/32"],
  ["2001:db8:0:0:1:0:0:1/128", "2001:db8::1:0:0:1/128"],
  ["2001:0:0:1:0:0:0:1/128", "2001:0:0:1::1/128"],
  ["2001:db8:0:1:1:1:1:1/128", "2001:db8:0:1:1:1:1:1/128"],
  ["1:2:3:4:5:6:7::/128", "1:2:3:4:5:6:7:0/128"],
  ["fe80::/10", "fe80::/10"],
  ["::ffff:1.2.3.4/128", "::ffff:1.2.3.4/128"],
  ["::ffff:0:0/96", "::ffff:0.0.0.0/96"],
  ["64:ff9b::192.0.2.33/128", "64:ff9b::c000:221/128"],
  ["::1.2.3.4/128", "::102:304/128"],
];

for (const [input, canonical] of good) {
  test(`parsePrefix accepts ${input} as ${canonical}`, () => {
    const parsed = parsePrefix(input);
    assert.is(parsed.ok ? formatPrefix(parsed.value) : parsed.message, canonical);
  });
}

test("bare addresses are single-address prefixes only when asked for", () => {
  const v4 = parsePrefix("192.0.2.1", { bareAddress: true });
  const v6 = parsePrefix("2001:db8::1", { bareAddress: true });
  assert.equal(v4, { ok: true, value: { family: 4, network: 0xc0000201n, length: 32 } });
  assert.ok(v6.ok && formatPrefix(v6.value) === "2001:db8::1/128");
  assert.equal(parsePrefix("2001:db8::1"), {
    ok: false,
    message: "has no prefix length",
    hint: 'did you mean "2001:db8::1/128" (a single address)?',
  });
  assert.equal(parsePrefix("010.0.0.1", { bareAddress: true }), {
    ok: false,
    message: "IPv4 part 010 has a leading zero (octal or decimal?)",
    hint: 'did you mean "10.0.0.1"?',
  });
});

test("parseAddress takes addresses, not prefixes", () => {
  assert.equal(parseAddress("192.0.2.1"), { ok: true, value: { family: 4, value: 0xc0000201n } });
  assert.equal(parseAddress("::"), { ok: true, value: { family: 6, value: 0n } });
  assert.equal(parseAddress("192.0.2.0/24"), { ok: false, message: "is a prefix, not a single address" });
  assert.equal(parseAddress("host.example"), {
    ok: false,
    message: "is not an IPv4 address (expected 4 decimal parts separated by dots)",
  });
  assert.equal(parseAddress("wg0"), { ok: false, message: "is not an IPv4 or IPv6 address" });
});

test("containsAddress checks family and network bits", () => {
  const p = prefixOf("10.0.0.0/8");
  assert.ok(containsAddress(p, 4, 0x0affffffn));
  assert.not.ok(containsAddress(p, 4, 0x0b000000n));
  assert.not.ok(containsAddress(p, 6, 0x0a000000n));
  assert.ok(containsAddress(prefixOf("::/0"), 6, (1n << 128n) - 1n));
});

// ---------------------------------------------------------------------------
// Set operations: examples

test("aggregate merges duplicates, covered and adjacent prefixes, IPv4 first", () => {
  const input = ["fe80::/10", "10.0.0.0/9", "10.128.0.0/9", "10.1.0.0/16", "192.168.1.0/24", "192.168.0.0/24", "192.168.0.0/24", "::/1", "8000::/1"];
  assert.equal(texts(aggregate(input.map(prefixOf))), ["10.0.0.0/8", "192.168.0.0/23", "::/0"]);
  assert.equal(aggregate([]), []);
});

test("aggregate splits an unaligned union into the fewest blocks", () => {
  // 10.0.0.1 .. 10.0.0.6 needs /32 /31 /31 /32.
  const input = ["10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32", "10.0.0.4/32", "10.0.0.5/32", "10.0.0.6/32"];
  assert.equal(texts(aggregate(input.map(prefixOf))), ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]);
});

test("ofRange: the whole space, one address, a range across word boundaries", () => {
  assert.equal(AddressSet.ofRange(6, 0n, (1n << 128n) - 1n).cidrs(), ["::/0"]);
  assert.equal(AddressSet.ofRange(4, 0n, 0xffffffffn).cidrs(), ["0.0.0.0/0"]);
  assert.equal(AddressSet.ofRange(4, 0x01020304n, 0x01020304n).cidrs(), ["1.2.3.4/32"]);
  assert.equal(AddressSet.ofRange(6, (1n << 64n) - 1n, 1n << 64n).cidrs(), ["::ffff:ffff:ffff:ffff/128", "0:0:0:1::/128"]);
  assert.throws(() => AddressSet.ofRange(4, 2n, 1n), /not a range/);
});

test("complement of a set and of nothing", () => {
  assert.equal(texts(complement([prefixOf("128.0.0.0/1")], 4)), ["0.0.0.0/1"]);
  assert.equal(texts(complement([], 4)), ["0.0.0.0/0"]);
  assert.equal(texts(complement([prefixOf("0.0.0.0/0")], 4)), []);
  assert.equal(texts(complement([prefixOf("::/1"), prefixOf("10.0.0.0/8")], 6)), ["8000::/1"]);
  assert.equal(texts(complement([prefixOf("255.255.255.255/32")], 4)).at(-1), "255.255.255.254/32");
});

test("subtract keeps what is left, in both families", () => {
  const from = ["0.0.0.0/0", "2001:db8::/32"].map(prefixOf);
  const remove = ["0.0.0.0/1", "192.168.0.0/16", "2001:db8:8000::/33"].map(prefixOf);
  assert.equal(texts(subtract(from, remove)), [
    "128.0.0.0/2",
    "192.0.0.0/9",
    "192.128.0.0/11",
    "192.160.0.0/13",
    "192.169.0.0/16",
    "192.170.0.0/15",
    "192.172.0.0/14",
    "192.176.0.0/12",
    "192.192.0.0/10",
    "193.0.0.0/8",
    "194.0.0.0/7",
    "196.0.0.0/6",
    "200.0.0.0/5",
    "208.0.0.0/4",
    "224.0.0.0/3",
    "2001:db8::/33",
  ]);
});

// ---------------------------------------------------------------------------
// Set operations: properties

const SPACE_END: Record<Family, bigint> = { 4: 1n << 32n, 6: 1n << 128n };
const BITS: Record<Family, number> = { 4: 32, 6: 128 };
const lastAddress = (p: Prefix) => p.network + (1n << BigInt(BITS[p.family] - p.length)) - 1n;

/**
 * Prefixes crowded into one small window per family (so they overlap, nest and
 * touch), with the occasional short prefix reaching the ends of the space, and
 * some around the 32-bit word boundaries where carries and borrows cross words.
 */
const arbitraryPrefix: fc.Arbitrary<Prefix> = fc
  .oneof(
    { weight: 9, arbitrary: fc.record({ family: fc.constantFrom<Family>(4, 6), offset: fc.bigInt(0n, 1023n), hostBits: fc.integer({ min: 0, max: 10 }) }) },
    { weight: 1, arbitrary: fc.record({ family: fc.constantFrom<Family>(4, 6), offset: fc.bigInt(0n, (1n << 128n) - 1n), hostBits: fc.integer({ min: 0, max: 128 }) }) },
    {
      weight: 3,
      arbitrary: fc.integer({ min: 1, max: 4 }).chain((word) =>
        fc.record({
          family: fc.constant<Family>(6),
          offset: fc.bigInt(-1024n, 1023n).map((o) => (1n << BigInt(32 * word)) - (0x20010db8n << 96n) + (o << BigInt(32 * word - 12))),
          hostBits: fc.integer({ min: 32 * word - 16, max: Math.min(128, 32 * word + 4) }),
        }),
      ),
    },
  )
  .map(({ family, offset, hostBits }) => {
    const bits = Math.min(hostBits, BITS[family]);
    const base = family === 4 ? 0x0a000000n : 0x20010db8n << 96n;
    const address = (((base + offset) % SPACE_END[family]) + SPACE_END[family]) % SPACE_END[family];
    const network = (address >> BigInt(bits)) << BigInt(bits);
    return { family, network, length: BITS[family] - bits };
  });
const arbitrarySet = fc.array(arbitraryPrefix, { maxLength: 40 });

const inSet = (set: readonly Prefix[], family: Family, address: bigint) => set.some((p) => containsAddress(p, family, address));

/** Addresses where membership can change: both sides of every prefix boundary, plus the ends of each space. */
function probes(...sets: (readonly Prefix[])[]): [Family, bigint][] {
  const points: [Family, bigint][] = [[4, 0n], [4, SPACE_END[4] - 1n], [6, 0n], [6, SPACE_END[6] - 1n]];
  for (const p of sets.flat()) {
    for (const a of [p.network - 1n, p.network, lastAddress(p), lastAddress(p) + 1n]) {
      if (a >= 0n && a < SPACE_END[p.family]) points.push([p.family, a]);
    }
  }
  return points;
}

function assertSameAddresses(actual: readonly Prefix[], expected: (family: Family, a: bigint) => boolean, ...related: (readonly Prefix[])[]) {
  for (const [family, a] of probes(actual, ...related)) {
    if (inSet(actual, family, a) !== expected(family, a)) {
      assert.unreachable(`address ${formatAddress(family, a)} is ${inSet(actual, family, a) ? "in" : "not in"} ${texts(actual).join(" ")}`);
    }
  }
}

function compareNetworks(a: Prefix, b: Prefix): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.network < b.network ? -1 : a.network > b.network ? 1 : 0;
}

/** Sorted and minimal: disjoint (so none contains another) and no two siblings that would merge into their parent. */
function assertMinimalSorted(ps: readonly Prefix[]) {
  for (let i = 1; i < ps.length; i++) {
    const [a, b] = [ps[i - 1]!, ps[i]!];
    assert.ok(compareNetworks(a, b) < 0, `not sorted: ${formatPrefix(a)} before ${formatPrefix(b)}`);
    if (a.family === b.family) assert.ok(lastAddress(a) < b.network, `overlap: ${formatPrefix(a)} ${formatPrefix(b)}`);
  }
  const present = new Set(ps.map(formatPrefix));
  for (const p of ps) {
    if (p.length === 0) continue;
    const hostBits = BigInt(BITS[p.family] - p.length);
    const sibling: Prefix = { family: p.family, network: p.network ^ (1n << hostBits), length: p.length };
    assert.not.ok(present.has(formatPrefix(sibling)), `${formatPrefix(p)} and ${formatPrefix(sibling)} would merge`);
  }
}

const property = (name: string, prop: fc.IPropertyWithHooks<any> | fc.IProperty<any>) =>
  test(name, () => fc.assert(prop, { numRuns: 300 }));

property(
  "aggregate covers exactly the input's addresses, minimally, sorted, idempotently",
  fc.property(arbitrarySet, (input) => {
    const output = aggregate(input);
    assertSameAddresses(output, (family, a) => inSet(input, family, a), input);
    const set = AddressSet.of(input);
    assert.equal(set.cidrs(), texts(output));
    assert.is(set.prefixCount(4) + set.prefixCount(6), output.length);
    assertMinimalSorted(output);
    assert.equal(aggregate(output), output);
    assert.equal(aggregate([...input].reverse()), output);
  }),
);

property(
  "ofRange is the range's addresses: the same set as its prefixes, first and last inside, neighbours outside",
  fc.property(fc.constantFrom<Family>(4, 6), fc.bigInt(0n, (1n << 128n) - 1n), fc.bigInt(0n, (1n << 128n) - 1n), (family, a, b) => {
    const top = SPACE_END[family] - 1n;
    const [first, last] = [a % (top + 1n), b % (top + 1n)].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)) as [bigint, bigint];
    const set = AddressSet.ofRange(family, first, last);
    const cover = set.prefixes();
    assertSameAddresses(cover, (f, x) => f === family && x >= first && x <= last, [
      { family, network: first, length: BITS[family] },
      { family, network: last, length: BITS[family] },
    ]);
    assertMinimalSorted(cover);
    assert.equal(AddressSet.of(cover).cidrs(), set.cidrs());
  }),
);

property(
  "chunks cut the cover into consecutive pieces of the asked sizes, whose covers are the cover",
  fc.property(arbitrarySet, fc.constantFrom<Family>(4, 6), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 5 }), (x, family, size, first) => {
    const set = AddressSet.of(x).only(family);
    const chunks = set.chunks(family, size, first);
    const counts = chunks.map((c) => c.prefixCount(family));
    const total = set.prefixCount(family);
    assert.is(counts.reduce((a, b) => a + b, 0), total);
    assert.equal(chunks.flatMap((c) => c.cidrs()), set.cidrs());
    counts.forEach((count, i) => {
      const quota = i === 0 ? first : size;
      if (i < counts.length - 1) assert.is(count, quota, `chunk ${i} of ${counts.join(",")}`);
      else assert.ok(count > 0 && count <= quota, `last chunk ${count} of ${counts.join(",")}`);
    });
    assert.is(chunks.length, total === 0 ? 0 : total <= first ? 1 : 1 + Math.ceil((total - first) / size));
  }),
);

property(
  "subtract: x = (x ∩ y) ∪ (x \\ y), and x \\ y shares no address with y",
  fc.property(arbitrarySet, arbitrarySet, (x, y) => {
    const difference = subtract(x, y);
    const intersection = subtract(x, difference);
    assertSameAddresses(difference, (family, a) => inSet(x, family, a) && !inSet(y, family, a), x, y);
    assertSameAddresses(intersection, (family, a) => inSet(x, family, a) && inSet(y, family, a), x, y);
    assertMinimalSorted(difference);
    const differenceSet = AddressSet.of(x).minus(AddressSet.of(y));
    assert.is(differenceSet.prefixCount(4) + differenceSet.prefixCount(6), difference.length);
    assert.equal(aggregate([...intersection, ...difference]), aggregate(x));
  }),
);

property(
  "complement is exact and its own inverse per family",
  fc.property(arbitrarySet, fc.constantFrom<Family>(4, 6), (x, family) => {
    const rest = complement(x, family);
    assertSameAddresses(rest, (f, a) => f === family && !inSet(x, f, a), x);
    assert.is(AddressSet.of(x).complement(family).prefixCount(family), rest.length);
    const restSet = AddressSet.of(x).complement(family);
    assert.is(restSet.prefixCount(family, rest.length + 1), rest.length);
    assert.ok(restSet.prefixCount(family, Math.floor(rest.length / 2)) >= Math.floor(rest.length / 2));
    assertMinimalSorted(rest);
    assert.equal(complement(rest, family), aggregate(x.filter((p) => p.family === family)));
  }),
);

property(
  "formatting round-trips through the parser",
  fc.property(arbitraryPrefix, (p) => {
    assert.equal(parsePrefix(formatPrefix(p)), { ok: true, value: p });
  }),
);

/** Every RFC 4291 spelling of an address: any leading zeros, any case, "::" on any zero run, an IPv4 tail. */
const arbitrarySpelling = fc
  .record({
    groups: fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }),
    pad: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 8, maxLength: 8 }),
    upper: fc.boolean(),
    compress: fc.nat(),
    tail: fc.boolean(),
  })
  .map(({ groups, pad, upper, compress, tail }) => {
    const value = groups.reduce((v, g) => (v << 16n) | BigInt(g), 0n);
    let parts = groups.map((g, i) => g.toString(16).padStart(Math.min(4, g.toString(16).length + pad[i]!), "0"));
    if (upper) parts = parts.map((p) => p.toUpperCase());
    if (tail) parts = [...parts.slice(0, 6), `${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`];
    const zeroRuns: [number, number][] = [];
    for (let i = 0; i < parts.length; i++) {
      for (let j = i; j < parts.length && groups[j] === 0 && !(tail && j >= 6); j++) zeroRuns.push([i, j + 1]);
    }
    let text = parts.join(":");
    if (zeroRuns.length > 0 && compress % 3 !== 0) {
      const [from, to] = zeroRuns[compress % zeroRuns.length]!;
      text = `${parts.slice(0, from).join(":")}::${parts.slice(to).join(":")}`;
    }
    return { text, value };
  });

property(
  "every IPv6 spelling parses to its value and formats by RFC 5952",
  fc.property(arbitrarySpelling, ({ text, value }) => {
    assert.equal(parseAddress(text), { ok: true, value: { family: 6, value } }, text);
    const canonical = formatAddress(6, value);
    assert.equal(parseAddress(canonical), { ok: true, value: { family: 6, value } }, canonical);
    // WHATWG URL serializes IPv6 hosts by RFC 5952 too (except the dotted IPv4-mapped form): an independent oracle.
    if (value >> 32n !== 0xffffn) assert.is(`[${canonical}]`, new URL(`http://[${text}]/`).hostname);
  }),
);

test("boundaries: where membership changes, each with what follows it", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 })), { maxLength: 10 }), fc.constantFrom<Family>(4, 6), (raw, family) => {
      const bits = family === 4 ? 32 : 128;
      const prefixes = raw.map(([n, length]): Prefix => {
        const len = family === 4 ? length : length * 4;
        const value = family === 4 ? BigInt(n) : BigInt(n) << 96n;
        const host = BigInt(bits - len);
        return { family, network: (value >> host) << host, length: len };
      });
      const set = AddressSet.of(prefixes);
      // The oracle: the cover's blocks merged into maximal ranges, by bigint arithmetic.
      const ranges: [bigint, bigint][] = [];
      for (const p of set.prefixes()) {
        const start = p.network;
        const end = p.network + (1n << BigInt(bits - p.length));
        const last = ranges.at(-1);
        if (last && last[1] === start) last[1] = end;
        else ranges.push([start, end]);
      }
      const expected: string[] = [];
      for (const [start, end] of ranges) {
        if (start !== 0n) expected.push(`${start} in`);
        if (end !== 1n << BigInt(bits)) expected.push(`${end} out`);
      }
      const found = set.boundaries(family);
      const row = (rows: Float64Array, i: number) => {
        let value = 0n;
        for (let k = 0; k < found.limbs; k++) value = (value << 32n) | BigInt(rows[i * found.limbs + k]!);
        return value;
      };
      const seen = Array.from({ length: found.count }, (_, i) => `${row(found.at, i)} ${found.after[i] ? "in" : "out"}`);
      assert.equal(seen, expected);
    }),
  );
});

test.run();
