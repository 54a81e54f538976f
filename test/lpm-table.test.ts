import { test } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { AddressSet, containsAddress, formatPrefix, type Family, type Prefix } from "../src/prefix.js";
import { cheapestTables, THROW, TUNNEL, UNREACHABLE, type LpmTable, type TableMode } from "../src/lpm-table.js";
import { lookupTable, type Route, type RoutingState } from "../src/route-model.js";
import { prefixOf } from "./prefix-of.js";

// Small universes: every prefix of a spec lies inside one /24 (IPv4) or /120 (IPv6), and the rest
// of the space is wholly captured or wholly not. A spec is a list of paint strokes: each prefix,
// in order, is captured or released; an address's verdict is its last stroke's, else the outside's.

interface Universe {
  readonly family: Family;
  readonly block: Prefix;
}
const UNIVERSES: readonly Universe[] = [
  { family: 4, block: prefixOf("192.0.2.0/24") },
  { family: 6, block: prefixOf("2001:db8::/120") },
];
const bits = (family: Family) => (family === 4 ? 32 : 128);

interface Spec {
  readonly outside: boolean;
  readonly strokes: readonly { readonly prefix: Prefix; readonly captured: boolean }[];
}

const specOf = (u: Universe) =>
  fc.record({
    outside: fc.boolean(),
    strokes: fc.array(
      fc.record({
        captured: fc.boolean(),
        prefix: fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 8 })).map(([offset, extra]): Prefix => {
          const host = BigInt(8 - extra);
          return { family: u.family, network: u.block.network + ((BigInt(offset) >> host) << host), length: bits(u.family) - 8 + extra };
        }),
      }),
      { maxLength: 8 },
    ),
  });

/** The spec's verdict for one address, straight from the strokes (no set arithmetic). */
function capturedBySpec(spec: Spec, family: Family, address: bigint): boolean {
  let captured = spec.outside;
  for (const stroke of spec.strokes) if (containsAddress(stroke.prefix, family, address)) captured = stroke.captured;
  return captured;
}

/** The captured set, made with the project's set arithmetic (what the plan hands the table builder). */
function capturedSet(spec: Spec, u: Universe): AddressSet {
  let set = spec.outside ? AddressSet.whole(u.family) : AddressSet.EMPTY;
  for (const stroke of spec.strokes) set = stroke.captured ? set.union(AddressSet.of([stroke.prefix])) : set.minus(AddressSet.of([stroke.prefix]));
  return set;
}

/** Every address of the universe's block, and addresses around it and at the ends of the space. */
function probes(u: Universe): bigint[] {
  const top = (1n << BigInt(bits(u.family))) - 1n;
  const inside = Array.from({ length: 256 }, (_, i) => u.block.network + BigInt(i));
  return [...inside, 0n, top, u.block.network - 1n, u.block.network + 256n, top / 2n, top / 2n + 1n];
}

const TABLE = 10086;
const LAST_RESORT_METRIC = 4294967295;

/** The table as the kernel holds it (the routes the plan emits for each kind), for route-model's lookup. */
function kernelRoutes(table: LpmTable, mode: TableMode, tunnelUp: boolean): RoutingState {
  const routes: Route[] = [];
  const defaultMetric = table.family === 6 ? 1024 : 0;
  for (let i = 0; i < table.count; i++) {
    const dst = prefixOf(table.destination(i));
    const base = { family: table.family, table: TABLE, dst, origin: "plan" as const };
    if (table.kinds[i] === TUNNEL) {
      if (tunnelUp) routes.push({ ...base, type: "unicast", dev: "wg0", metric: defaultMetric });
    } else if (table.kinds[i] === UNREACHABLE) {
      routes.push({ ...base, type: "unreachable", metric: mode === "guarded-tunnel" ? LAST_RESORT_METRIC : defaultMetric });
    } else {
      routes.push({ ...base, type: "throw", metric: defaultMetric });
    }
  }
  return { rules: [], routes };
}

type Verdict = "tunnel" | "unreachable" | "falls through";
function verdict(state: RoutingState, family: Family, address: bigint): Verdict {
  const route = lookupTable(state, TABLE, family, address);
  if (route === undefined || route.type === "throw") return "falls through";
  return route.type === "unreachable" ? "unreachable" : "tunnel";
}

const MODES: readonly TableMode[] = ["tunnel", "guarded-tunnel", "blocked"];

/** What the spec wants for a captured address, with the tunnel up and down. */
function wanted(mode: TableMode, captured: boolean, tunnelUp: boolean): Verdict {
  if (!captured) return "falls through";
  if (mode === "blocked") return "unreachable";
  if (tunnelUp) return "tunnel";
  return mode === "guarded-tunnel" ? "unreachable" : "falls through";
}

// ---------------------------------------------------------------------------
// The reference: the fewest routes of any table, searched over every prefix of the space
// (not only the trie's nodes) and every set of routes one prefix may carry, including sets
// the table builder never uses. Routes in disjoint subtrees decide disjoint addresses, so
// the cheapest table is the cheapest route set at the root plus the cheapest tables of both
// halves under what the set leaves them: exact, and memoised on blocks the spec leaves
// uniform (their answer depends only on their size, verdict and what they inherit).

/** What a lookup has matched so far: the winning route's kind in the full table, and without the tunnel's routes. */
interface Matched {
  readonly full: "none" | "T" | "U" | "X";
  readonly anchor: "none" | "U" | "X";
}
type Kind = "T" | "U" | "X";
/** Route sets of one prefix: two routes of equal metric cannot share it (only the kill switch's have another). */
const REFERENCE_SETS: Record<TableMode, readonly (readonly Kind[])[]> = {
  tunnel: [[], ["T"], ["X"]],
  blocked: [[], ["U"], ["X"]],
  "guarded-tunnel": [[], ["T"], ["U"], ["X"], ["T", "U"], ["U", "X"]],
};

function afterSet(mode: TableMode, matched: Matched, set: readonly Kind[]): Matched {
  if (set.length === 0) return matched;
  // Lowest metric wins among routes of one prefix: the tunnel's and throws at the default, the kill switch's last.
  const lastResort = mode === "guarded-tunnel";
  const rank = (k: Kind) => (k === "U" && lastResort ? 1 : 0);
  const full = [...set].sort((a, b) => rank(a) - rank(b))[0]!;
  const anchorSet = set.filter((k): k is "U" | "X" => k !== "T");
  const anchor = anchorSet.length === 0 ? matched.anchor : [...anchorSet].sort((a, b) => rank(a) - rank(b))[0]!;
  return { full, anchor };
}

function satisfies(mode: TableMode, matched: Matched, captured: boolean): boolean {
  const verdictOf = (k: Matched["full"]): Verdict => (k === "T" ? "tunnel" : k === "U" ? "unreachable" : "falls through");
  return verdictOf(matched.full) === wanted(mode, captured, true) && verdictOf(matched.anchor) === wanted(mode, captured, false);
}

function referenceMinimum(spec: Spec, u: Universe, mode: TableMode): number {
  const width = bits(u.family);
  const blockEnd = u.block.network + 256n;
  /** Whether [network, network + 2^(width - length)) has one verdict, and which. */
  const inBlock = Array.from({ length: 256 }, (_, i) => capturedBySpec(spec, u.family, u.block.network + BigInt(i)));
  const uniform = (network: bigint, length: number): boolean | undefined => {
    const end = network + (1n << BigInt(width - length));
    if (end <= u.block.network || network >= blockEnd) return spec.outside;
    if (network < u.block.network || end > blockEnd) return undefined;
    const from = Number(network - u.block.network);
    const first = inBlock[from]!;
    for (let i = from + 1; i < Number(end - u.block.network); i++) if (inBlock[i] !== first) return undefined;
    return first;
  };
  const memo = new Map<string, number>();
  const cheapest = (network: bigint, length: number, matched: Matched): number => {
    const kind = uniform(network, length);
    const key = kind === undefined ? `${network}/${length}:${matched.full}${matched.anchor}` : `${kind}/${length}:${matched.full}${matched.anchor}`;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let best = Infinity;
    for (const set of REFERENCE_SETS[mode]) {
      const below = afterSet(mode, matched, set);
      let cost = set.length;
      if (length === width) cost += satisfies(mode, below, kind!) ? 0 : Infinity;
      else {
        const half = 1n << BigInt(width - length - 1);
        cost += cheapest(network, length + 1, below) + cheapest(network + half, length + 1, below);
      }
      if (cost < best) best = cost;
    }
    memo.set(key, best);
    return best;
  };
  return cheapest(0n, 0, { full: "none", anchor: "none" });
}

for (const u of UNIVERSES) {
  for (const mode of MODES) {
    test(`IPv${u.family} ${mode}: every address gets the spec's verdict, with the fewest routes any table has`, () => {
      fc.assert(
        fc.property(specOf(u), (spec) => {
          const [table] = cheapestTables([{ family: u.family, captured: capturedSet(spec, u), mode }]).tables;
          for (const tunnelUp of [true, false]) {
            const state = kernelRoutes(table!, mode, tunnelUp);
            for (const address of probes(u)) {
              const want = wanted(mode, capturedBySpec(spec, u.family, address), tunnelUp);
              const got = verdict(state, u.family, address);
              if (got !== want) throw new Error(`${address} with the tunnel ${tunnelUp ? "up" : "down"}: ${got}, the spec says ${want}`);
            }
          }
          assert.is(table!.count, referenceMinimum(spec, u, mode), "route count = the fewest of any table");
        }),
        { numRuns: Number(process.env.RUNS ?? (u.family === 4 ? 150 : 60)) },
      );
    });
  }
}

// ---------------------------------------------------------------------------
// Examples a reviewer can read.

const captured = (family: Family, exclude: string[], include: string[] = []) =>
  AddressSet.whole(family).minus(AddressSet.of(exclude.map(prefixOf))).union(AddressSet.of(include.map(prefixOf)));
const describe = (table: LpmTable) => Array.from({ length: table.count }, (_, i) => `${["tunnel", "unreachable", "throw"][table.kinds[i]!]} ${table.destination(i)}`);

test("a hole in an exclusion nests: throw 10.0.0.0/8 with 10.1.0.0/16 through the tunnel inside it", () => {
  const [table] = cheapestTables([{ family: 4, captured: captured(4, ["10.0.0.0/8"], ["10.1.0.0/16"]), mode: "tunnel" }]).tables;
  assert.equal(describe(table!), ["tunnel 0.0.0.0/0", "throw 10.0.0.0/8", "tunnel 10.1.0.0/16"]);
  assert.equal(table!.nested(TUNNEL, THROW), [2]);
  assert.equal(table!.counts, [2, 0, 1]);
});

test("kill switch: a tunnel route inside a throw gets its unreachable twin; the default's twin covers the rest", () => {
  const [table] = cheapestTables([{ family: 4, captured: captured(4, ["10.0.0.0/8"], ["10.1.0.0/16"]), mode: "guarded-tunnel" }]).tables;
  assert.equal(describe(table!), ["tunnel 0.0.0.0/0", "unreachable 0.0.0.0/0", "throw 10.0.0.0/8", "tunnel 10.1.0.0/16", "unreachable 10.1.0.0/16"]);
});

test("kill switch: a throw may sit inside a tunnel route and its twin", () => {
  // Captured: three quarters of 10.0.0.0/8. Twins for 10.0.0.0/9 and 10.192.0.0/10 would be four routes.
  const set = AddressSet.of(["10.0.0.0/9", "10.192.0.0/10"].map(prefixOf));
  const [guarded] = cheapestTables([{ family: 4, captured: set, mode: "guarded-tunnel" }]).tables;
  assert.equal(describe(guarded!), ["tunnel 10.0.0.0/8", "unreachable 10.0.0.0/8", "throw 10.128.0.0/10"]);
  assert.equal(guarded!.nested(THROW, UNREACHABLE), [2]);
  // Without the kill switch two routes either way; of equal tables the one with fewer tunnel routes wins.
  const [plain] = cheapestTables([{ family: 4, captured: set, mode: "tunnel" }]).tables;
  assert.equal(describe(plain!), ["tunnel 10.0.0.0/8", "throw 10.128.0.0/10"]);
});

test("blocked: the target is an unreachable route on the anchor, nested like a tunnel route", () => {
  const [table] = cheapestTables([{ family: 6, captured: captured(6, ["fc00::/7"], ["fd12:3456::/32"]), mode: "blocked" }]).tables;
  assert.equal(describe(table!), ["unreachable ::/0", "throw fc00::/7", "unreachable fd12:3456::/32"]);
});

test("nothing captured: no route at all; everything captured: the default route alone", () => {
  for (const mode of MODES) {
    const [none] = cheapestTables([{ family: 4, captured: AddressSet.EMPTY, mode }]).tables;
    assert.is(none!.count, 0);
    const [all] = cheapestTables([{ family: 6, captured: AddressSet.whole(6), mode }]).tables;
    assert.equal(describe(all!), mode === "guarded-tunnel" ? ["tunnel ::/0", "unreachable ::/0"] : [mode === "blocked" ? "unreachable ::/0" : "tunnel ::/0"]);
  }
});

test("long stretches: a lone prefix at any depth costs one route, whichever way it goes", () => {
  // The program skips the levels of a stretch once its costs repeat: the skipped levels must
  // not hide a route, at any depth, in either family, for a prefix captured or released.
  for (const family of [4, 6] as const) {
    // From /3 on: the released rest needs at least three prefixes of its own, so nesting wins.
    for (let length = 3; length <= bits(family); length++) {
      const host = BigInt(bits(family) - length);
      // An address with ones and zeros all along (0x5a...), cut to the length.
      const pattern = family === 4 ? 0x5a5a5a5an : 0x5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5an;
      const lone: Prefix = { family, network: (pattern >> host) << host, length };
      const text = formatPrefix(lone);
      for (const mode of MODES) {
        const [released] = cheapestTables([{ family, captured: AddressSet.of([lone]).complement(family), mode }]).tables;
        const zero = family === 4 ? "0.0.0.0/0" : "::/0";
        const target = mode === "blocked" ? [`unreachable ${zero}`] : mode === "guarded-tunnel" ? [`tunnel ${zero}`, `unreachable ${zero}`] : [`tunnel ${zero}`];
        assert.equal(describe(released!), [...target, `throw ${text}`], `${mode}: everything but ${text}`);
        const [only] = cheapestTables([{ family, captured: AddressSet.of([lone]), mode }]).tables;
        const inside = mode === "blocked" ? [`unreachable ${text}`] : mode === "guarded-tunnel" ? [`tunnel ${text}`, `unreachable ${text}`] : [`tunnel ${text}`];
        assert.equal(describe(only!), inside, `${mode}: only ${text}`);
      }
    }
  }
});

test("long stretches with other leaves on each side: a range's ragged ends deep in the space", () => {
  // Captured: 2001:db8::5 up to 2001:db8::1:3 (both included), a range no prefix covers, so the
  // stretches above its two boundaries have captured leaves on one side and released on the other.
  for (const mode of MODES) {
    const set = AddressSet.ofRange(6, 0x20010db8n << 96n | 5n, (0x20010db8n << 96n) | 0x10003n);
    const [table] = cheapestTables([{ family: 6, captured: set, mode }]).tables;
    const state = kernelRoutes(table!, mode, true);
    const want = wanted(mode, true, true);
    const other = wanted(mode, false, true);
    for (const offset of [0n, 4n, 5n, 6n, 0xffffn, 0x10000n, 0x10003n, 0x10004n, 1n << 64n]) {
      const address = (0x20010db8n << 96n) | offset;
      const inside = offset >= 5n && offset <= 0x10003n;
      assert.is(verdict(state, 6, address), inside ? want : other, `${mode}: 2001:db8::${offset.toString(16)}`);
    }
    // Its minimal cover: ::5/128, ::6/127, ::8/125, ..., ::8000/113, ::1:0/127, ::1:2/127; the table is no longer.
    assert.ok(table!.counts[mode === "blocked" ? UNREACHABLE : TUNNEL] <= set.prefixCount(6), `${mode}: ${describe(table!).join(", ")}`);
  }
});

// ---------------------------------------------------------------------------
// The tunnel link's route limit is a constraint on both families together.

test("a tunnel route limit is kept, and the tables are the cheapest with as few tunnel routes", () => {
  // Many small captured islands in an excluded sea: the optimum lists them through the tunnel.
  const islands = Array.from({ length: 12 }, (_, i) => `10.${i * 16}.0.0/16`);
  const set4 = AddressSet.of(islands.map(prefixOf));
  const set6 = AddressSet.of(["2001:db8::/48", "2001:db8:2::/48", "2001:db8:4::/48"].map(prefixOf));
  const requests = [
    { family: 4 as const, captured: set4, mode: "tunnel" as const },
    { family: 6 as const, captured: set6, mode: "tunnel" as const },
  ];
  const free = cheapestTables(requests);
  assert.equal(free.tables.map((t) => t.counts[TUNNEL]), [12, 3]);
  assert.is(free.limited, undefined, "the limit does not bind");
  const limited = cheapestTables(requests, 5);
  assert.ok(limited.tables.reduce((n, t) => n + t.counts[TUNNEL], 0) <= 5);
  // What the limit cost: more routes than without it, and no more than the bound says is needed.
  const routes = limited.tables.reduce((n, t) => n + t.count, 0);
  assert.is(limited.limited?.unlimited, 15);
  assert.ok(limited.limited!.atLeast > 15 && limited.limited!.atLeast <= routes, `${limited.limited!.atLeast} <= ${routes}`);
  // Each family still gives every address its verdict.
  for (const [i, t] of limited.tables.entries()) {
    const state = kernelRoutes(t, "tunnel", true);
    const set = i === 0 ? set4 : set6;
    for (const p of set.prefixes()) assert.is(verdict(state, p.family, p.network), "tunnel", formatPrefix(p));
  }
  assert.throws(() => cheapestTables(requests, 1), /at least 2 routes through the tunnel/);
});

test.run();
