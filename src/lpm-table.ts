// Fewest routes: the cheapest routing table under longest-prefix match for one family of the split.
//
// The kernel looks a destination up by longest-prefix match, so routes may nest:
// `throw 10.0.0.0/8` with `10.1.0.0/16 dev wg0` inside it says "10/8 direct except
// 10.1/16" in two routes, where a cover of either side needs many. The cheapest table
// that gives every address its verdict is found by a dynamic program over a binary
// trie (ORTC: Draves, King, Venkatachary, Zill, "Constructing Optimal IP Routing
// Tables", INFOCOM 1999, generalised to per-route costs):
//
//   - The trie's leaves are the fewest CIDR blocks that cut the family's space into
//     pieces wholly captured or wholly not. Every internal node has two children, so a trie
//     of n leaves has 2n - 1 nodes. Routes below a leaf or off the trie never help:
//     a leaf's addresses all need the same verdict, and one route set at the leaf gives
//     it for the same cost as any set inside it (the tests check this against a search
//     over every prefix).
//   - What a lookup inherits at a node is a state: which route the longest match so far
//     is (none, a tunnel route, an unreachable route, a throw), and with the kill switch
//     also what it is with the tunnel's routes gone (they vanish with the link).
//   - For each node and each inherited state the program keeps the cheapest cost of its
//     subtree: the cost of the route set placed at the node (none, or one of a few) plus
//     that of both children under the state it leaves. A leaf accepts only the state its
//     addresses need. The root inherits "no route", and its cheapest cost is the optimum.
//
// That trie is never built. Most of its nodes have a leaf for one child: a lone IPv6 /48
// hangs some thirty levels below its nearest neighbour in the list, one leaf beside each.
// The program runs on the trie of the set's boundaries instead (the addresses where
// membership changes, from prefix.ts), where such a stretch is one node, and a stretch
// whose leaves all need the same verdict costs the same from a few levels
// up: the program stops computing there, and placing the routes skips it. The tables are
// those of the full trie, route for route (ties go the same way). A million-line IPv4
// list makes about 1.2 million boundary nodes where the full trie has 3.6 million.

import { formatLimbs, type AddressSet, type Boundaries, type Family } from "./prefix.js";

/** What the table does with captured traffic, and so which routes it may use. */
export type TableMode =
  /** Through the tunnel; while the tunnel is down its routes are gone and captured traffic falls through. */
  | "tunnel"
  /** Through the tunnel, failing closed while it is down (the kill switch): an unreachable route must answer then. */
  | "guarded-tunnel"
  /** Nowhere: captured traffic meets an unreachable route at once (ipv6 = "block"). */
  | "blocked";

/** A route of the table: through the tunnel (on its link), or on the anchor: unreachable, or a throw. */
export const TUNNEL = 0;
export const UNREACHABLE = 1;
export const THROW = 2;
export type RouteKind = typeof TUNNEL | typeof UNREACHABLE | typeof THROW;

/** What each route costs where it lives; a route through the tunnel may cost more (a limited link that goes down). */
export interface RouteCosts {
  readonly tunnel: number;
  readonly anchor: number;
}

/**
 * The lookup as a state machine over the route sets one prefix may carry. States are
 * small integers; `next[state * sets + set]` is the state below a prefix carrying `set`.
 */
interface Machine {
  readonly states: number;
  /** Each set's routes, in the order they are emitted. */
  readonly sets: readonly (readonly RouteKind[])[];
  readonly next: Uint8Array;
  /** The state in which a lookup must end for a captured address, and for any other. */
  readonly inside: number;
  readonly outside: number;
}

function machine(states: number, sets: readonly (readonly RouteKind[])[], next: (state: number, set: number) => number, inside: number, outside: number): Machine {
  const table = new Uint8Array(states * sets.length);
  for (let s = 0; s < states; s++) for (let r = 0; r < sets.length; r++) table[s * sets.length + r] = next(s, r);
  return { states, sets, next: table, inside, outside };
}

const MACHINES: Record<TableMode, Machine> = {
  // 0: falls through (no route, or a throw), 1: through the tunnel.
  tunnel: machine(2, [[], [TUNNEL], [THROW]], (s, r) => [s, 1, 0][r]!, 1, 0),
  // 0: falls through, 1: unreachable.
  blocked: machine(2, [[], [UNREACHABLE], [THROW]], (s, r) => [s, 1, 0][r]!, 1, 0),
  // 2 * (longest match is a tunnel route) + (with the tunnel's routes gone, the longest match is unreachable).
  // A tunnel route needs an unreachable twin (same prefix, the highest metric: it loses while the tunnel is up)
  // only where no unreachable route around it would answer in its place.
  "guarded-tunnel": machine(4, [[], [TUNNEL], [UNREACHABLE], [THROW], [TUNNEL, UNREACHABLE]], (s, r) => [s, 2 | (s & 1), 1, 0, 3][r]!, 3, 0),
};

// ------------------------------------------------------------------- the trie

/** Bit `l` (0: the most significant) of row i. */
function bitOf(rows: Float64Array, i: number, l: number, limbs: number): number {
  return (rows[i * limbs + (l >>> 5)]! >>> (31 - (l & 31))) & 1;
}

/**
 * How many leading bits row i minus one and row j share, for rows i <= j, row i not zero.
 * Row i minus one is row i with its lowest set bit cleared and every bit below it set, so
 * that is the bits rows i and j share, or those above row i's lowest set bit if fewer.
 */
function sharedBitsBefore(rows: Float64Array, i: number, j: number, limbs: number): number {
  let shared = 32 * limbs;
  for (let k = 0; k < limbs; k++) {
    const a = rows[i * limbs + k]!;
    const b = rows[j * limbs + k]!;
    if (a !== b) {
      shared = 32 * k + Math.clz32(a ^ b);
      break;
    }
  }
  for (let k = limbs - 1; k >= 0; k--) {
    const a = rows[i * limbs + k]!;
    if (a !== 0) return Math.min(shared, 32 * k + Math.clz32(a & -a));
  }
  return shared;
}

/** Whether every bit of row i from bit `from` on is zero. */
function zeroFrom(rows: Float64Array, i: number, from: number, limbs: number): boolean {
  const k = from >>> 5;
  if (k < limbs && ((rows[i * limbs + k]! << (from & 31)) | 0) !== 0) return false;
  for (let m = k + 1; m < limbs; m++) if (rows[i * limbs + m] !== 0) return false;
  return true;
}

/** POWER[k] = 2^k, for the bits of one 32-bit limb. */
const POWER = Float64Array.from({ length: 32 }, (_, k) => 2 ** k);

/** Row `into` of `to`: row i of `from` cut to its first `length` bits, with bit `length` set if `setBit`. */
function prefixRow(from: Float64Array, i: number, length: number, setBit: boolean, to: Float64Array, into: number, limbs: number): void {
  for (let k = 0; k < limbs; k++) {
    const keep = length - 32 * k;
    const w = from[i * limbs + k]!;
    to[into * limbs + k] = keep >= 32 ? w : keep <= 0 ? 0 : w - (w % POWER[32 - keep]!);
  }
  if (setBit) to[into * limbs + (length >>> 5)] += POWER[31 - (length & 31)]!;
}

/**
 * The binary trie of a family's space, cut where membership is uniform, with its unary
 * stretches compressed: a Patricia trie of the boundaries (prefix.ts). A node is a stretch
 * of prefixes from `top` down to `split`: each prefix above the split has one child that
 * holds all of the node's boundaries (boundaries lo..hi-1) and one that holds none, a
 * uniform sibling, which is a leaf; at the split both children are nodes (`left`, `right`)
 * or leaves (-1). Which side a stretch's siblings are on is read off the bits of its last
 * boundary; what they hold is what lies beyond its boundaries on that side.
 *
 * Sparse lists make long stretches (a lone IPv6 /48 hangs some thirty prefixes below the
 * nearest other boundary), and a stretch with the same leaf all along costs the same
 * from a few prefixes on: the program stops there instead of walking every prefix.
 * Nodes are numbered children first; the trie depends on the captured set, not on costs.
 */
class BoundaryTrie {
  readonly limbs: number;
  readonly bits: number;
  count = 0;
  readonly top: Uint8Array;
  readonly split: Uint8Array;
  readonly lo: Int32Array;
  readonly hi: Int32Array;
  readonly left: Int32Array;
  readonly right: Int32Array;
  /** The node of the whole space; -1: no boundary, the space is one leaf. */
  readonly root: number;
  /** The nodes of the uncompressed trie (prefixes with their leaves), for bounds on table sizes. */
  fullNodes = 0;

  constructor(
    readonly family: Family,
    readonly boundaries: Boundaries,
    /** With no boundaries: whether the whole space is captured. */
    readonly wholeInside: boolean,
  ) {
    this.limbs = boundaries.limbs;
    this.bits = 32 * boundaries.limbs;
    // A node takes the boundary at its split, or splits its boundaries in two: at most 2n - 1 nodes.
    const capacity = Math.max(1, 2 * boundaries.count - 1);
    this.top = new Uint8Array(capacity);
    this.split = new Uint8Array(capacity);
    this.lo = new Int32Array(capacity);
    this.hi = new Int32Array(capacity);
    this.left = new Int32Array(capacity);
    this.right = new Int32Array(capacity);
    this.root = boundaries.count === 0 ? -1 : this.build(0, 0, boundaries.count);
    if (this.root === -1) this.fullNodes = 1;
  }

  private build(top: number, lo: number, hi: number): number {
    const { at } = this.boundaries;
    const limbs = this.limbs;
    // The longest prefix holding the last address before the first boundary, and the last boundary.
    const split = sharedBitsBefore(at, lo, hi - 1, limbs);
    // Boundaries below the split's right child start: bit `split` clear (sorted, so a binary search).
    let q = lo;
    for (let r = hi; q < r; ) {
      const m = (q + r) >>> 1;
      if (bitOf(at, m, split, limbs)) r = m;
      else q = m + 1;
    }
    const left = q > lo ? this.build(split + 1, lo, q) : -1;
    // A boundary exactly at the right child's start lies inside neither child.
    const from = q < hi && zeroFrom(at, q, split + 1, limbs) ? q + 1 : q;
    const right = from < hi ? this.build(split + 1, from, hi) : -1;
    const id = this.count++;
    this.top[id] = top;
    this.split[id] = split;
    this.lo[id] = lo;
    this.hi[id] = hi;
    this.left[id] = left;
    this.right[id] = right;
    this.fullNodes += 2 * (split - top) + 1 + (left === -1 ? 1 : 0) + (right === -1 ? 1 : 0);
    return id;
  }

  /** Whether what lies before node id's first boundary (its leaves on the left) is captured. */
  insideBefore(id: number): number {
    return this.boundaries.after[this.lo[id]!]! ^ 1;
  }

  /** Whether what lies after node id's last boundary (its leaves on the right) is captured. */
  insideAfter(id: number): number {
    return this.boundaries.after[this.hi[id]! - 1]!;
  }
}

// ------------------------------------------------------------------- the program

/**
 * The cheapest cost of every trie node's prefixes for every inherited state: per node, the
 * rows of its stretch from its split up to where they repeat (see stretchRows), kept for
 * placing the routes; and the row at its top.
 */
interface Solution {
  readonly rows: Float64Array;
  /** Per node: where its rows start in `rows` (the split's row first, then each shorter prefix's). */
  readonly rowStart: Int32Array;
  readonly repeatFrom: Uint8Array;
  readonly atTop: Float64Array;
  readonly cost: number;
}

/** A machine's sets with their costs, and the answers of the trie's leaves. */
class Pricing {
  readonly states: number;
  readonly setCount: number;
  readonly setCost: Float64Array;
  /** Per verdict (0: not captured, 1: captured) and inherited state: a leaf's cheapest cost, and its set. */
  readonly leafCost: Float64Array;
  readonly leafSet: Uint8Array;

  constructor(
    readonly machine: Machine,
    costs: RouteCosts,
  ) {
    const { states, sets, next, inside, outside } = machine;
    this.states = states;
    this.setCount = sets.length;
    this.setCost = Float64Array.from(sets, (set) => set.reduce<number>((sum, kind) => sum + (kind === TUNNEL ? costs.tunnel : costs.anchor), 0));
    this.leafCost = new Float64Array(2 * states);
    this.leafSet = new Uint8Array(2 * states);
    // A leaf accepts exactly the state its addresses need (nothing is added below it).
    const below = new Float64Array(states);
    [outside, inside].forEach((wanted, verdict) => {
      for (let s = 0; s < states; s++) below[s] = s === wanted ? 0 : Infinity;
      for (let s = 0; s < states; s++) {
        const set = this.cheapestSet(s, below, 0);
        this.leafSet[verdict * states + s] = set;
        this.leafCost[verdict * states + s] = this.setCost[set]! + below[next[s * this.setCount + set]!]!;
      }
    });
  }

  /** The cheapest set at a prefix inherited in state s, whose children cost `below[at + state]` together. */
  cheapestSet(s: number, below: Float64Array, at: number): number {
    const { setCount, setCost } = this;
    const next = this.machine.next;
    let best = Infinity;
    let bestSet = 0;
    for (let set = 0, row = s * setCount; set < setCount; set++) {
      const c = setCost[set]! + below[at + next[row + set]!]!;
      if (c < best) {
        best = c;
        bestSet = set;
      }
    }
    return bestSet;
  }

  /** Row `into` of `to`, per inherited state: the cheapest cost of a prefix whose children cost `below` together. */
  cheapest(below: Float64Array, to: Float64Array, into: number): void {
    const { states, setCount, setCost } = this;
    const next = this.machine.next;
    for (let s = 0; s < states; s++) {
      let best = Infinity;
      for (let set = 0, row = s * setCount; set < setCount; set++) {
        const c = setCost[set]! + below[next[row + set]!]!;
        if (c < best) best = c;
      }
      to[into + s] = best;
    }
  }
}

/**
 * Cost rows of node id's stretch, bottom up, in `rows` from `start`: first the split's row
 * (already there), then each shorter prefix's, up to `top`. Each row is the cheapest over
 * the row below plus the leaf beside it; once a row repeats, so does every row above it
 * with the same leaf. Returns the length from which rows repeat upwards: the rows of
 * shorter prefixes in the stretch, not written, are the row at that length.
 */
function stretchRows(trie: BoundaryTrie, id: number, pricing: Pricing, rows: Float64Array, start: number, sum: Float64Array): number {
  const { states, leafCost } = pricing;
  const last = trie.hi[id]! - 1;
  const top = trie.top[id]!;
  const split = trie.split[id]!;
  const inLeft = trie.insideBefore(id);
  const inRight = trie.insideAfter(id);
  let stable = false;
  let stableLeaf = -1;
  for (let l = split - 1; l >= top; l--) {
    const leaf = bitOf(trie.boundaries.at, last, l, trie.limbs) ? inLeft : inRight;
    const from = start + (split - l - 1) * states;
    const to = from + states;
    if (stable && leaf === stableLeaf) {
      if (inLeft === inRight) return l + 1;
      for (let s = 0; s < states; s++) rows[to + s] = rows[from + s]!;
      continue;
    }
    for (let s = 0; s < states; s++) sum[s] = leafCost[leaf * states + s]! + rows[from + s]!;
    pricing.cheapest(sum, rows, to);
    stable = true;
    for (let s = 0; s < states; s++) if (rows[to + s] !== rows[from + s]) stable = false;
    stableLeaf = leaf;
  }
  return top;
}

/** The dynamic program over the trie: every node's cheapest costs per inherited state, children first. */
function solve(trie: BoundaryTrie, pricing: Pricing): Solution {
  const { states, leafCost } = pricing;
  const atTop = new Float64Array(trie.count * states);
  const rowStart = new Int32Array(trie.count);
  const repeatFrom = new Uint8Array(trie.count);
  let rows = new Float64Array(Math.max(64, 2 * trie.count * states));
  let used = 0;
  const sum = new Float64Array(states);
  const { left: lefts, right: rights, split: splits, top: tops, lo, hi } = trie;
  const after = trie.boundaries.after;
  for (let id = 0; id < trie.count; id++) {
    const left = lefts[id]!;
    const right = rights[id]!;
    const leftRows = left === -1 ? leafCost : atTop;
    const leftAt = (left === -1 ? after[lo[id]!]! ^ 1 : left) * states;
    const rightRows = right === -1 ? leafCost : atTop;
    const rightAt = (right === -1 ? after[hi[id]! - 1]! : right) * states;
    for (let s = 0; s < states; s++) sum[s] = leftRows[leftAt + s]! + rightRows[rightAt + s]!;
    const split = splits[id]!;
    const top = tops[id]!;
    if (used + (split - top + 1) * states > rows.length) rows = grown(rows, new Float64Array(2 * (used + (split - top + 1) * states)));
    pricing.cheapest(sum, rows, used);
    const from = split === top ? split : stretchRows(trie, id, pricing, rows, used, sum);
    rowStart[id] = used;
    repeatFrom[id] = from;
    used += (split - from) * states;
    for (let s = 0; s < states; s++) atTop[id * states + s] = rows[used + s]!;
    used += states;
  }
  // The root inherits "no route" (state 0).
  const cost = trie.root === -1 ? leafCost[(trie.wholeInside ? 1 : 0) * states]! : atTop[trie.root * states]!;
  return { rows, rowStart, repeatFrom, atTop, cost };
}

/** `into` with `from` copied to its start. */
function grown<T extends Uint8Array | Int32Array | Float64Array>(from: T, into: T): T {
  into.set(from as never);
  return into;
}

/** Where a route set goes relative to a prefix on a stretch: at the prefix, or at one of its children. */
const SELF = 0;
const LEFT = 1;
const RIGHT = 2;

/** The cheapest table for one family and mode: its routes in address order, each enclosing route before those inside it. */
export class LpmTable {
  readonly limbs: number;
  count = 0;
  /** Per route: kind, prefix length, network (a row of `limbs` 32-bit limbs), innermost enclosing route (-1: none). */
  kinds = new Uint8Array(64);
  lengths = new Uint8Array(64);
  networks: Float64Array;
  parents = new Int32Array(64);
  /** Per route: the kinds of the routes at its innermost enclosing prefix, one bit per kind (0: none). */
  enclosingKinds = new Uint8Array(64);
  /** Routes of each kind (TUNNEL, UNREACHABLE, THROW). */
  readonly counts: [number, number, number] = [0, 0, 0];
  /** The table's cost under the costs it was built for. */
  readonly cost: number;

  private readonly setKinds: Uint8Array;
  /** The trie's boundaries, whose prefixes the routes are. */
  private readonly at: Float64Array;
  /** Scratch: a network being placed, and the costs of a prefix's children. */
  private readonly network: Float64Array;
  private readonly sum: Float64Array;
  /** Leaves waiting for the rest of their stretch: length above them, set, enclosing route and its set. */
  private readonly waiting: number[] = [];

  constructor(
    readonly family: Family,
    readonly mode: TableMode,
    trie: BoundaryTrie,
    pricing: Pricing,
    solution: Solution,
  ) {
    this.limbs = trie.limbs;
    this.at = trie.boundaries.at;
    this.networks = new Float64Array(64 * this.limbs);
    this.network = new Float64Array(this.limbs);
    this.sum = new Float64Array(pricing.states);
    this.setKinds = Uint8Array.from(pricing.machine.sets, (set) => set.reduce<number>((bits, kind) => bits | (1 << kind), 0));
    this.cost = solution.cost;
    if (trie.root === -1) {
      const set = pricing.leafSet[(trie.wholeInside ? 1 : 0) * pricing.states]!;
      this.network.fill(0);
      this.place(set, 0, -1, 0);
    } else {
      this.placeNode(trie, pricing, solution, trie.root, 0, -1, 0);
    }
    this.kinds = this.kinds.subarray(0, this.count);
    this.lengths = this.lengths.subarray(0, this.count);
    this.networks = this.networks.subarray(0, this.count * this.limbs);
    this.parents = this.parents.subarray(0, this.count);
    this.enclosingKinds = this.enclosingKinds.subarray(0, this.count);
  }

  /**
   * The routes of `set` at the prefix of boundary `last` cut to `cut` bits (SELF), or at its
   * child on the LEFT or RIGHT, inside route `parent` (whose set is parentSet); returns the
   * first route, or `parent` for none.
   */
  private placeAt(set: number, last: number, cut: number, child: typeof SELF | typeof LEFT | typeof RIGHT, parent: number, parentSet: number): number {
    if (set === 0) return parent;
    prefixRow(this.at, last, cut, child === RIGHT, this.network, 0, this.limbs);
    return this.place(set, child === SELF ? cut : cut + 1, parent, parentSet);
  }

  /** The routes of `set` at `this.network`/length, inside route `parent` (whose set is parentSet); returns the first, or `parent` for none. */
  private place(set: number, length: number, parent: number, parentSet: number): number {
    if (set === 0) return parent;
    const sets = MACHINES[this.mode].sets;
    const added = sets[set]!;
    if (this.count + added.length > this.kinds.length) {
      const capacity = 2 * this.kinds.length;
      this.kinds = grown(this.kinds, new Uint8Array(capacity));
      this.lengths = grown(this.lengths, new Uint8Array(capacity));
      this.networks = grown(this.networks, new Float64Array(capacity * this.limbs));
      this.parents = grown(this.parents, new Int32Array(capacity));
      this.enclosingKinds = grown(this.enclosingKinds, new Uint8Array(capacity));
    }
    const first = this.count;
    const { limbs, network, networks } = this;
    for (let k = 0; k < added.length; k++) {
      const kind = added[k]!;
      const i = this.count++;
      this.kinds[i] = kind;
      this.lengths[i] = length;
      for (let m = 0; m < limbs; m++) networks[i * limbs + m] = network[m]!;
      this.parents[i] = parent;
      this.enclosingKinds[i] = this.setKinds[parentSet]!;
      this.counts[kind]++;
    }
    return first;
  }

  /**
   * Places node id's routes inherited in `state` inside route `parent`, in preorder, left before
   * right: down its stretch (a leaf on the left before the prefixes below, one on the right
   * after them), its split, its children, then the stretch's leaves on the right, deepest first.
   */
  private placeNode(trie: BoundaryTrie, pricing: Pricing, solution: Solution, id: number, state: number, parent: number, parentSet: number): void {
    const { states, leafCost, leafSet } = pricing;
    const next = pricing.machine.next;
    const { limbs } = trie;
    const at = trie.boundaries.at;
    const last = trie.hi[id]! - 1;
    const top = trie.top[id]!;
    const split = trie.split[id]!;
    const inLeft = trie.insideBefore(id);
    const inRight = trie.insideAfter(id);
    const { sum, waiting } = this;
    const rows = solution.rows;
    const start = solution.rowStart[id]!;
    const repeatFrom = solution.repeatFrom[id]!;
    const waitingFrom = waiting.length;
    let s = state;
    for (let l = top; l < split; l++) {
      const goesRight = bitOf(at, last, l, limbs);
      const leaf = goesRight ? inLeft : inRight;
      const below = start + (split - (l + 1 > repeatFrom ? l + 1 : repeatFrom)) * states;
      for (let t = 0; t < states; t++) sum[t] = leafCost[leaf * states + t]! + rows[below + t]!;
      const set = pricing.cheapestSet(s, sum, 0);
      // Where the rows repeat, the leaves are the same all along: a prefix that adds no route
      // and leaves its leaf without one is followed by more of the same down to repeatFrom.
      if (set === 0 && leafSet[leaf * states + s] === 0 && l + 1 < repeatFrom) {
        l = repeatFrom - 1;
        continue;
      }
      if (set !== 0) {
        parent = this.placeAt(set, last, l, SELF, parent, parentSet);
        parentSet = set;
      }
      s = next[s * pricing.setCount + set]!;
      const leafRoutes = leafSet[leaf * states + s]!;
      if (leafRoutes === 0) continue;
      if (goesRight) {
        this.placeAt(leafRoutes, last, l, LEFT, parent, parentSet);
      } else {
        waiting.push(l, leafRoutes, parent, parentSet);
      }
    }
    const left = trie.left[id]!;
    const right = trie.right[id]!;
    const leftRows = left === -1 ? leafCost : solution.atTop;
    const leftAt = (left === -1 ? inLeft : left) * states;
    const rightRows = right === -1 ? leafCost : solution.atTop;
    const rightAt = (right === -1 ? inRight : right) * states;
    for (let t = 0; t < states; t++) sum[t] = leftRows[leftAt + t]! + rightRows[rightAt + t]!;
    const set = pricing.cheapestSet(s, sum, 0);
    if (set !== 0) {
      parent = this.placeAt(set, last, split, SELF, parent, parentSet);
      parentSet = set;
    }
    s = next[s * pricing.setCount + set]!;
    if (left === -1) {
      this.placeAt(leafSet[inLeft * states + s]!, last, split, LEFT, parent, parentSet);
    } else {
      this.placeNode(trie, pricing, solution, left, s, parent, parentSet);
    }
    if (right === -1) {
      this.placeAt(leafSet[inRight * states + s]!, last, split, RIGHT, parent, parentSet);
    } else {
      this.placeNode(trie, pricing, solution, right, s, parent, parentSet);
    }
    while (waiting.length > waitingFrom) {
      const waitingSet = waiting.pop()!;
      const enclosing = waiting.pop()!;
      const leafRoutes = waiting.pop()!;
      const l = waiting.pop()!;
      this.placeAt(leafRoutes, last, l, RIGHT, enclosing, waitingSet);
    }
  }

  /** Route i's destination, as formatPrefix writes it. */
  destination(i: number): string {
    return formatLimbs(this.family, this.networks, i, this.lengths[i]!);
  }

  /** The destinations of the routes of one kind, in address order, formatted as they are visited. */
  forEachDestination(kind: RouteKind, visit: (text: string, index: number) => void): void {
    for (let i = 0, n = 0; i < this.count; i++) if (this.kinds[i] === kind) visit(this.destination(i), n++);
  }

  /** The routes of `kind` whose innermost enclosing prefix carries a route of `enclosingKind` (not a twin at their own prefix). */
  nested(kind: RouteKind, enclosingKind: RouteKind): number[] {
    const found: number[] = [];
    const mask = 1 << enclosingKind;
    for (let i = 0; i < this.count; i++) if (this.kinds[i] === kind && (this.enclosingKinds[i]! & mask) !== 0) found.push(i);
    return found;
  }
}

/**
 * Among tables of equal route count, fewer routes through the tunnel win: those are lost
 * while it is down and count against its link's limit. The tie-break is a power of two
 * small enough that sums of a few million costs stay exact in doubles.
 */
const TUNNEL_TIE_BREAK = 2 ** -22;

export interface TableRequest {
  readonly family: Family;
  readonly captured: AddressSet;
  readonly mode: TableMode;
}

/**
 * The grid of tunnel route prices searched. A price changes the tables only where a tunnel
 * route saved costs routes elsewhere, in whole numbers per tunnel route in practice; each step
 * is a pass over the whole trie, so the grid is coarse.
 */
const PRICE_STEP = 1 / 8;

export class TunnelRouteLimitError extends Error {}

/** The tables of cheapestTables, and what the tunnel's limit cost where it binds. */
export interface CheapestTables {
  readonly tables: LpmTable[];
  /**
   * Where the limit binds: the routes of the cheapest tables without it, and a bound that no
   * tables within it beat. Each table set the search makes is the cheapest at its price P, so
   * any tables with at most `limit` tunnel routes have at least routes + P * (tunnel routes -
   * limit) of them (Lagrangian duality); the bound is the best of those.
   */
  readonly limited?: { readonly unlimited: number; readonly atLeast: number };
}

/**
 * The cheapest table for each request (one per family), every route costing one, with at
 * most `tunnelRouteLimit` routes through the tunnel over all of them (they share the
 * tunnel's link). Unconstrained, each table is the optimum. When the optimum puts more
 * routes on the tunnel than the limit allows, each route through the tunnel is charged
 * a price on top (the same in every family), the least price on a grid of PRICE_STEP for
 * which the tables fit: then the tables are the cheapest of all tables with no more tunnel
 * routes than they have (a Lagrangian relaxation: exact for the count it lands on, which
 * may be below the limit; `limited.atLeast` says how far from the optimum within the limit
 * they can be at most).
 */
export function cheapestTables(requests: readonly TableRequest[], tunnelRouteLimit = Infinity): CheapestTables {
  const tries = requests.map((r) => new BoundaryTrie(r.family, r.captured.boundaries(r.family), !r.captured.only(r.family).isEmpty()));
  const routes = (tables: LpmTable[]) => tables.reduce((n, t) => n + t.count, 0);
  const tunnelRoutes = (tables: LpmTable[]) => tables.reduce((n, t) => n + t.counts[TUNNEL], 0);
  let atLeast = 0;
  const run = (price: number) => {
    const tables = requests.map((r, i) => {
      const pricing = new Pricing(MACHINES[r.mode], { tunnel: 1 + TUNNEL_TIE_BREAK + price, anchor: 1 });
      return new LpmTable(r.family, r.mode, tries[i]!, pricing, solve(tries[i]!, pricing));
    });
    const bound = routes(tables) + (TUNNEL_TIE_BREAK + price) * (tunnelRoutes(tables) - tunnelRouteLimit);
    atLeast = Math.max(atLeast, Math.ceil(bound - 1e-6));
    return tables;
  };
  const tables = run(0);
  if (tunnelRoutes(tables) <= tunnelRouteLimit) return { tables };
  // Doubling the price from 1/8 until the tables fit, then halving the gap down to 1/8. At a price
  // above any table's size every tunnel route saved pays: if the tables do not fit then, none do.
  const largest = Math.max(1024, ...tries.map((trie) => trie.fullNodes + 130));
  const ceiling = 2 ** Math.ceil(Math.log2(largest * requests.length * 2));
  let low = 0;
  let high = PRICE_STEP;
  let fits: LpmTable[] | undefined;
  for (; ; high *= 2) {
    const attempt = run(Math.min(high, ceiling));
    if (tunnelRoutes(attempt) <= tunnelRouteLimit) {
      fits = attempt;
      break;
    }
    if (high >= ceiling) {
      throw new TunnelRouteLimitError(`the split needs at least ${tunnelRoutes(attempt)} routes through the tunnel, more than its link's limit of ${tunnelRouteLimit}`);
    }
    low = high;
  }
  while (high - low > PRICE_STEP) {
    const middle = (low + high) / 2;
    const attempt = run(middle);
    if (tunnelRoutes(attempt) <= tunnelRouteLimit) {
      high = middle;
      fits = attempt;
    } else {
      low = middle;
    }
  }
  return { tables: fits, limited: { unlimited: routes(tables), atLeast } };
}
