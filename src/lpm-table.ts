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
//     pieces wholly captured or wholly not (AddressSet.forEachPartitionBlockDown: the
//     set arithmetic stays in prefix.ts). Every internal node has two children, so a trie
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
// The program runs while the blocks arrive, right to left, so the trie is never built: a
// stack holds the subtrees waiting for their sibling. What is kept per node is its prefix
// length and its cheapest route set per inherited state, in typed arrays in the order the
// nodes were completed (a post-order, right before left): read backwards that order is a
// preorder, left before right, which is all that placing the routes needs. A million-line
// IPv4 list makes about 3.6 million nodes.

import { formatLimbs, type AddressSet, type Family } from "./prefix.js";

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

/** The cheapest route set of every trie node for every inherited state, and the cost from the root. */
class Solution {
  /** Per node, in completion order: prefix length, and the chosen set per state (4 bits each). */
  lengths: Uint8Array;
  choices: Uint16Array;
  nodes = 0;
  cost = 0;

  constructor(capacity: number) {
    this.lengths = new Uint8Array(capacity);
    this.choices = new Uint16Array(capacity);
  }

  grow(): void {
    const lengths = new Uint8Array(2 * this.lengths.length);
    lengths.set(this.lengths);
    this.lengths = lengths;
    const choices = new Uint16Array(2 * this.choices.length);
    choices.set(this.choices);
    this.choices = choices;
  }
}

/** Deepest the subtree stack gets: one waiting sibling per prefix length, and the new leaf. */
const STACK = 130;

/** The dynamic program over the partition trie of `captured`, run as its blocks arrive. */
function solve(family: Family, captured: AddressSet, mode: TableMode, costs: RouteCosts, sizeHint: number): Solution {
  const { states, sets, next, inside, outside } = MACHINES[mode];
  const setCount = sets.length;
  const setCost = Float64Array.from(sets, (set) => set.reduce<number>((sum, kind) => sum + (kind === TUNNEL ? costs.tunnel : costs.anchor), 0));
  const solution = new Solution(Math.max(1024, sizeHint));
  // Per subtree on the stack: its prefix length, and per inherited state its cheapest cost.
  const lengths = new Uint8Array(STACK);
  const cost = new Float64Array(STACK * states);
  const sum = new Float64Array(states);
  /** The cheapest set per state above costs `sum` below, written to the stack at `depth`; the sets packed. */
  const cheapest = (depth: number): number => {
    const at = depth * states;
    let packed = 0;
    for (let s = 0; s < states; s++) {
      let best = Infinity;
      let bestSet = 0;
      for (let set = 0, row = s * setCount; set < setCount; set++) {
        const c = setCost[set]! + sum[next[row + set]!]!;
        if (c < best) {
          best = c;
          bestSet = set;
        }
      }
      cost[at + s] = best;
      packed |= bestSet << (4 * s);
    }
    return packed;
  };
  // A leaf accepts exactly the state its addresses need (nothing is added below it): two fixed answers.
  const leafCost = new Float64Array(2 * states);
  const leafChoices = [inside, outside].map((wanted, i) => {
    for (let s = 0; s < states; s++) sum[s] = s === wanted ? 0 : Infinity;
    const packed = cheapest(0);
    leafCost.set(cost.subarray(0, states), i * states);
    return packed;
  });
  const [insideChoices, outsideChoices] = leafChoices as [number, number];
  let depth = 0;
  let nodes = 0;
  let nodeLengths = solution.lengths;
  let nodeChoices = solution.choices;
  captured.forEachPartitionBlockDown(family, (length, isInside) => {
    if (nodes + 130 > nodeLengths.length) {
      solution.grow();
      nodeLengths = solution.lengths;
      nodeChoices = solution.choices;
    }
    const from = isInside ? 0 : states;
    for (let s = 0, at = depth * states; s < states; s++) cost[at + s] = leafCost[from + s]!;
    lengths[depth++] = length;
    nodeLengths[nodes] = length;
    nodeChoices[nodes++] = isInside ? insideChoices : outsideChoices;
    // Every subtree on the stack below the top waits for its sibling, so two of equal length on top are siblings.
    while (depth > 1 && lengths[depth - 1] === lengths[depth - 2]) {
      const parent = lengths[depth - 1]! - 1;
      depth -= 2;
      for (let s = 0, l = depth * states, r = l + states; s < states; s++) sum[s] = cost[l + s]! + cost[r + s]!;
      nodeChoices[nodes] = cheapest(depth);
      nodeLengths[nodes++] = parent;
      lengths[depth++] = parent;
    }
  });
  solution.nodes = nodes;
  // The root inherits "no route" (state 0).
  solution.cost = cost[0]!;
  return solution;
}

/** POWER[k] = 2^k, for the bits of one 32-bit limb. */
const POWER = Float64Array.from({ length: 32 }, (_, k) => 2 ** k);

/** `into` with `from` copied to its start. */
function grown<T extends Uint8Array | Int32Array | Float64Array>(from: T, into: T): T {
  into.set(from as never);
  return into;
}

/** The cheapest table for one family and mode: its routes in address order, each enclosing route before those inside it. */
export class LpmTable {
  readonly limbs: number;
  readonly count: number;
  /** Per route: kind, prefix length, network (a row of `limbs` 32-bit limbs), innermost enclosing route (-1: none). */
  readonly kinds: Uint8Array;
  readonly lengths: Uint8Array;
  readonly networks: Float64Array;
  readonly parents: Int32Array;
  /** Per route: the kinds of the routes at its innermost enclosing prefix, one bit per kind (0: none). */
  readonly enclosingKinds: Uint8Array;
  /** Routes of each kind (TUNNEL, UNREACHABLE, THROW). */
  readonly counts: readonly [number, number, number];
  /** The table's cost under the costs it was built for. */
  readonly cost: number;

  constructor(
    readonly family: Family,
    readonly mode: TableMode,
    solution: Solution,
  ) {
    const { sets, next } = MACHINES[mode];
    const setCount = sets.length;
    const limbs = family === 4 ? 1 : 4;
    const bits = 32 * limbs;
    this.limbs = limbs;
    let capacity = 64;
    let kinds = new Uint8Array(capacity);
    let routeLengths = new Uint8Array(capacity);
    let routeNetworks = new Float64Array(capacity * limbs);
    let parents = new Int32Array(capacity);
    let enclosingKinds = new Uint8Array(capacity);
    const setKinds = Uint8Array.from(sets, (set) => set.reduce<number>((bits, kind) => bits | (1 << kind), 0));
    const counts: [number, number, number] = [0, 0, 0];
    // Nodes in reverse completion order are a preorder: a node's parent is the last node seen one bit
    // shorter, and of its two children the left (same network) comes first. Per prefix length: the
    // state below the last node seen, its network, whether its left child has been seen, and the
    // innermost route at or above it.
    const below = new Uint8Array(bits + 1);
    const networks = new Float64Array((bits + 1) * limbs);
    const leftSeen = new Uint8Array(bits + 1);
    const enclosing = new Int32Array(bits + 1);
    const enclosingSet = new Uint8Array(bits + 1);
    let count = 0;
    for (let node = solution.nodes - 1; node >= 0; node--) {
      const length = solution.lengths[node]!;
      let state = 0;
      let parent = -1;
      let parentSet = 0;
      const at = length * limbs;
      if (length > 0) {
        const up = length - 1;
        state = below[up]!;
        parent = enclosing[up]!;
        parentSet = enclosingSet[up]!;
        for (let k = 0; k < limbs; k++) networks[at + k] = networks[up * limbs + k]!;
        if (leftSeen[up]) {
          // The right child: the bit after the parent's prefix set (it was clear, so no carry).
          const bit = bits - length;
          networks[at + limbs - 1 - (bit >>> 5)] += POWER[bit & 31]!;
        } else {
          leftSeen[up] = 1;
        }
      } else {
        networks.fill(0, 0, limbs);
      }
      const set = (solution.choices[node]! >>> (4 * state)) & 15;
      if (set !== 0) {
        const added = sets[set]!;
        if (count + 2 > capacity) {
          capacity *= 2;
          kinds = grown(kinds, new Uint8Array(capacity));
          routeLengths = grown(routeLengths, new Uint8Array(capacity));
          routeNetworks = grown(routeNetworks, new Float64Array(capacity * limbs));
          parents = grown(parents, new Int32Array(capacity));
          enclosingKinds = grown(enclosingKinds, new Uint8Array(capacity));
        }
        const first = count;
        for (let i = 0; i < added.length; i++) {
          const kind = added[i]!;
          kinds[count] = kind;
          routeLengths[count] = length;
          for (let k = 0; k < limbs; k++) routeNetworks[count * limbs + k] = networks[at + k]!;
          parents[count] = parent;
          enclosingKinds[count] = setKinds[parentSet]!;
          counts[kind]++;
          count++;
        }
        parent = first;
        parentSet = set;
      }
      below[length] = next[state * setCount + set]!;
      leftSeen[length] = 0;
      enclosing[length] = parent;
      enclosingSet[length] = parentSet;
    }
    this.count = count;
    this.kinds = kinds.subarray(0, count);
    this.lengths = routeLengths.subarray(0, count);
    this.networks = routeNetworks.subarray(0, count * limbs);
    this.parents = parents.subarray(0, count);
    this.enclosingKinds = enclosingKinds.subarray(0, count);
    this.counts = counts;
    this.cost = solution.cost;
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

/**
 * The cheapest table for each request (one per family), every route costing one, with at
 * most `tunnelRouteLimit` routes through the tunnel over all of them (they share the
 * tunnel's link). Unconstrained, each table is the optimum. When the optimum puts more
 * routes on the tunnel than the limit allows, each route through the tunnel is charged
 * a price on top (the same in every family), the least price on a grid of PRICE_STEP for
 * which the tables fit: then the tables are the cheapest of all tables with no more tunnel
 * routes than they have (a Lagrangian relaxation: exact for the count it lands on, which
 * may be below the limit).
 */
export function cheapestTables(requests: readonly TableRequest[], tunnelRouteLimit = Infinity): LpmTable[] {
  let sizeHint = 1024;
  const run = (price: number) =>
    requests.map((r) => {
      const solution = solve(r.family, r.captured, r.mode, { tunnel: 1 + TUNNEL_TIE_BREAK + price, anchor: 1 }, sizeHint);
      sizeHint = Math.max(sizeHint, solution.nodes + 130);
      return new LpmTable(r.family, r.mode, solution);
    });
  const tunnelRoutes = (tables: LpmTable[]) => tables.reduce((n, t) => n + t.counts[TUNNEL], 0);
  const tables = run(0);
  if (tunnelRoutes(tables) <= tunnelRouteLimit) return tables;
  // Doubling the price from 1/8 until the tables fit, then halving the gap down to 1/8. At a price
  // above any table's size every tunnel route saved pays: if the tables do not fit then, none do.
  const ceiling = 2 ** Math.ceil(Math.log2(sizeHint * requests.length * 2));
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
  return fits;
}
