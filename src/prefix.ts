// IP prefixes: strict parsing, canonical formatting and exact set arithmetic.
//
// Parsing is deliberately strict: every spelling that another tool might read
// differently ("010.0.0.0/8" as octal, "/33" clamped, host bits silently
// dropped) is an error with a hint, because a routing table built from a guess
// sends traffic where nobody meant it to go.
//
// Set operations work on sorted, disjoint, non-adjacent address ranges
// [start, end) per family and turn them back into CIDR blocks by greedy
// decomposition. The decomposition of a range into the largest aligned blocks
// is the unique minimal CIDR cover of that range, and maximal ranges share no
// block, so the result is the unique minimal cover of the whole set. The range
// algorithms are written once; only the address arithmetic differs per family
// (IPv4 in plain numbers, which are fast and exact below 2^53, IPv6 in bigints).

export type Family = 4 | 6;

export interface Prefix {
  readonly family: Family;
  /** The first address of the prefix; host bits are always zero. */
  readonly network: bigint;
  readonly length: number;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string; hint?: string };

interface Failure {
  readonly ok: false;
  readonly message: string;
  readonly hint?: string;
}

/** A misspelt address whose meaning is clear enough to suggest, before it is turned into a hint. */
interface Correctable extends Failure {
  readonly corrected: string;
}

function failure(message: string, hint?: string): Failure {
  return hint === undefined ? { ok: false, message } : { ok: false, message, hint };
}

const isFailure = (x: unknown): x is Failure => typeof x === "object" && x !== null && (x as Failure).ok === false;

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

// ---------------------------------------------------------------------------
// Parsing

const IPV4 = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const DECIMAL = /^(0|[1-9][0-9]*)$/;

function parseIPv4(text: string): number | Failure {
  const match = IPV4.exec(text);
  if (match === null) return failure("is not an IPv4 address (expected 4 decimal parts separated by dots)");
  let value = 0;
  for (let i = 1; i <= 4; i++) {
    const part = match[i]!;
    if (part.length > 1 && part.charCodeAt(0) === 48 /* "0" */) {
      const corrected = match.slice(1).map((p) => String(Number(p))).join(".");
      const correctable: Correctable = { ok: false, message: `IPv4 part ${part} has a leading zero (octal or decimal?)`, corrected };
      return correctable;
    }
    const octet = part.length > 3 ? 256 : Number(part);
    if (octet > 255) return failure(`IPv4 part ${part} is out of range (0-255)`);
    value = value * 256 + octet;
  }
  return value;
}

/** RFC 4291 section 2.2 text forms: eight groups, one "::" for a run of zero groups, optional IPv4 tail. */
function parseIPv6(text: string): bigint | Failure {
  const halves = text.split("::");
  if (halves.length > 2) return failure('is not an IPv6 address ("::" may appear only once)');
  const compressed = halves.length === 2;
  const head = halves[0] === "" ? [] : halves[0]!.split(":");
  const tail = !compressed || halves[1] === "" ? [] : halves[1]!.split(":");
  const groups: number[] = [];
  const last = compressed ? tail : head;
  const parseGroups = (parts: string[], isLast: boolean): Failure | undefined => {
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (isLast && i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIPv4(part);
        if (isFailure(v4)) return failure(`is not an IPv6 address (IPv4 tail "${part}": ${v4.message.replace(/^is not an IPv4 address \((.*)\)$/, "$1")})`);
        groups.push(Math.floor(v4 / 65536), v4 % 65536);
      } else if (HEX_GROUP.test(part)) {
        groups.push(parseInt(part, 16));
      } else {
        return failure(
          part === ""
            ? "is not an IPv6 address (empty group; only one \"::\" may stand for zero groups)"
            : `is not an IPv6 address (group "${part}" is not 1-4 hex digits)`,
        );
      }
    }
    return undefined;
  };
  const headError = parseGroups(head, last === head);
  if (headError) return headError;
  const explicitHead = groups.length;
  const tailError = parseGroups(tail, last === tail);
  if (tailError) return tailError;
  if (compressed ? groups.length > 7 : groups.length !== 8) {
    return failure(
      compressed
        ? `is not an IPv6 address (${groups.length} groups plus "::"; at most 7 with "::")`
        : `is not an IPv6 address (${groups.length} groups; 8 expected, or use "::")`,
    );
  }
  const zeros = new Array<number>(8 - groups.length).fill(0);
  const all = [...groups.slice(0, explicitHead), ...zeros, ...groups.slice(explicitHead)];
  let value = 0n;
  for (const group of all) value = (value << 16n) | BigInt(group);
  return value;
}

function parseAddressText(text: string, noun: string): { family: Family; value: bigint } | Failure {
  if (text === "") return failure("is empty");
  if (text.includes(":")) {
    const value = parseIPv6(text);
    return isFailure(value) ? value : { family: 6, value };
  }
  if (text.includes(".")) {
    const value = parseIPv4(text);
    return isFailure(value) ? value : { family: 4, value: BigInt(value) };
  }
  return failure(`is not an IPv4 or IPv6 ${noun}`);
}

/** The failure as callers see it: a correction becomes a "did you mean" hint for the whole input. */
function withHint(error: Failure, suffix: string): Failure {
  if (!("corrected" in error)) return error;
  return failure(error.message, `did you mean "${(error as Correctable).corrected}${suffix}"?`);
}

const WHITESPACE = /\s/;

export function parseAddress(text: string): Parsed<{ family: Family; value: bigint }> {
  if (WHITESPACE.test(text)) return failure("contains whitespace");
  if (text.includes("/")) return failure("is a prefix, not a single address");
  const address = parseAddressText(text, "address");
  return isFailure(address) ? withHint(address, "") : { ok: true, value: address };
}

/**
 * Parses "address/length" strictly. With `bareAddress`, an address without a
 * length stands for itself (/32 or /128), as in prefix list files.
 */
export function parsePrefix(text: string, options: { bareAddress?: boolean } = {}): Parsed<Prefix> {
  if (WHITESPACE.test(text)) return failure("contains whitespace");
  const slash = text.indexOf("/");
  const address = parseAddressText(slash === -1 ? text : text.slice(0, slash), "prefix");
  if (isFailure(address)) return withHint(address, slash === -1 ? "" : text.slice(slash));
  const bits = BITS[address.family];
  let length = bits;
  if (slash === -1) {
    if (!options.bareAddress) {
      return failure("has no prefix length", `did you mean "${text}/${bits}" (a single address)?`);
    }
  } else {
    const lengthText = text.slice(slash + 1);
    if (lengthText === "") return failure("has an empty prefix length");
    if (!DECIMAL.test(lengthText)) {
      return failure("has a bad prefix length (expected a decimal number without sign or leading zeros)");
    }
    length = Number(lengthText);
    if (length > bits) {
      return failure(`prefix length ${lengthText} is out of range for IPv${address.family} (0-${bits})`);
    }
  }
  const hostBits = BigInt(bits - length);
  const network = (address.value >> hostBits) << hostBits;
  const prefix: Prefix = { family: address.family, network, length };
  if (network !== address.value) return failure("has host bits set", `did you mean "${formatPrefix(prefix)}"?`);
  return { ok: true, value: prefix };
}

// ---------------------------------------------------------------------------
// Formatting

function formatIPv4(value: number): string {
  return `${Math.floor(value / 16777216)}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

/** RFC 5952: lowercase, no leading zeros, the longest run (first if tied) of two or more zero groups as "::". */
function formatIPv6(value: bigint): string {
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn));
  // Section 5: IPv4-mapped addresses keep their dotted IPv4 tail.
  if (value >> 32n === 0xffffn) return `::ffff:${formatIPv4(Number(value & 0xffffffffn))}`;
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(":");
  if (bestStart === -1) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

export function formatAddress(family: Family, value: bigint): string {
  return family === 4 ? formatIPv4(Number(value)) : formatIPv6(value);
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddress(p.family, p.network)}/${p.length}`;
}

export function containsAddress(p: Prefix, family: Family, value: bigint): boolean {
  if (p.family !== family) return false;
  const hostBits = BigInt(BITS[family] - p.length);
  return value >> hostBits === p.network >> hostBits;
}

// ---------------------------------------------------------------------------
// Set arithmetic on ranges

/** The address arithmetic the range algorithms need; one instance per family. */
interface Space<N extends number | bigint> {
  readonly family: Family;
  readonly bits: number;
  readonly zero: N;
  /** 2^bits: one past the highest address. */
  readonly end: N;
  /** blockSize[k] = 2^k. */
  readonly blockSize: readonly N[];
  add(a: N, b: N): N;
  fromBigint(value: bigint): N;
  toBigint(value: N): bigint;
  /** log2 of the largest CIDR block that starts at `start` and ends at or before `end`. */
  largestBlock(start: N, end: N): number;
  /** Sorts blocks, given as parallel arrays of networks and prefix lengths, by network in place. */
  sortBlocks(networks: N[], lengths: number[]): void;
}

/** Sorted, disjoint, non-adjacent half-open ranges [starts[i], ends[i]). */
interface Ranges<N> {
  readonly starts: N[];
  readonly ends: N[];
}

const V4: Space<number> = {
  family: 4,
  bits: 32,
  zero: 0,
  end: 2 ** 32,
  blockSize: Array.from({ length: 33 }, (_, k) => 2 ** k),
  add: (a, b) => a + b,
  fromBigint: (value) => Number(value),
  toBigint: (value) => BigInt(value),
  largestBlock(start, end) {
    // start & -start isolates the lowest set bit (ToInt32 keeps it right up to 2^31).
    const aligned = start === 0 ? 32 : 31 - Math.clz32(start & -start);
    const span = end - start;
    const fits = span >= 2 ** 32 ? 32 : 31 - Math.clz32(span);
    return aligned < fits ? aligned : fits;
  },
  sortBlocks(networks, lengths) {
    // network * 64 + length stays below 2^38, exact in a double, so a native
    // comparator-free typed-array sort orders both at once (several times faster
    // than sorting with a callback).
    const keys = new Float64Array(networks.length);
    for (let i = 0; i < keys.length; i++) keys[i] = networks[i]! * 64 + lengths[i]!;
    keys.sort();
    for (let i = 0; i < keys.length; i++) {
      const network = Math.floor(keys[i]! / 64);
      networks[i] = network;
      lengths[i] = keys[i]! - network * 64;
    }
  },
};

function bitLength(value: bigint): number {
  let n = 0;
  while (value >= 0x100000000n) {
    value >>= 32n;
    n += 32;
  }
  return n + 32 - Math.clz32(Number(value));
}

const V6: Space<bigint> = {
  family: 6,
  bits: 128,
  zero: 0n,
  end: 1n << 128n,
  blockSize: Array.from({ length: 129 }, (_, k) => 1n << BigInt(k)),
  add: (a, b) => a + b,
  fromBigint: (value) => value,
  toBigint: (value) => value,
  largestBlock(start, end) {
    const aligned = start === 0n ? 128 : bitLength(start & -start) - 1;
    const fits = bitLength(end - start) - 1;
    return aligned < fits ? aligned : fits;
  },
  sortBlocks(networks, lengths) {
    const order = Array.from(networks.keys()).sort((a, b) =>
      networks[a]! < networks[b]! ? -1 : networks[a]! > networks[b]! ? 1 : 0,
    );
    const sortedNetworks = order.map((i) => networks[i]!);
    const sortedLengths = order.map((i) => lengths[i]!);
    for (let i = 0; i < order.length; i++) {
      networks[i] = sortedNetworks[i]!;
      lengths[i] = sortedLengths[i]!;
    }
  },
};

/** Maximal ranges covering the given blocks of one family (the arrays are sorted in place). */
function toRanges<N extends number | bigint>(space: Space<N>, networks: N[], lengths: number[]): Ranges<N> {
  const starts: N[] = [];
  const ends: N[] = [];
  space.sortBlocks(networks, lengths);
  for (let i = 0; i < networks.length; i++) {
    const start = networks[i]!;
    const end = space.add(start, space.blockSize[space.bits - lengths[i]!]!);
    const last = ends.length - 1;
    if (last >= 0 && start <= ends[last]!) {
      if (end > ends[last]!) ends[last] = end;
    } else {
      starts.push(start);
      ends.push(end);
    }
  }
  return { starts, ends };
}

/** a \ b, both maximal ranges. */
function difference<N extends number | bigint>(a: Ranges<N>, b: Ranges<N>): Ranges<N> {
  const starts: N[] = [];
  const ends: N[] = [];
  let j = 0;
  for (let i = 0; i < a.starts.length; i++) {
    let current = a.starts[i]!;
    const end = a.ends[i]!;
    while (j < b.ends.length && b.ends[j]! <= current) j++;
    for (let k = j; k < b.starts.length && b.starts[k]! < end && current < end; k++) {
      if (b.starts[k]! > current) {
        starts.push(current);
        ends.push(b.starts[k]!);
      }
      if (b.ends[k]! > current) current = b.ends[k]!;
    }
    if (current < end) {
      starts.push(current);
      ends.push(end);
    }
  }
  return { starts, ends };
}

/** The unique minimal CIDR cover of maximal ranges, in address order. */
function toPrefixes<N extends number | bigint>(space: Space<N>, ranges: Ranges<N>): Prefix[] {
  const prefixes: Prefix[] = [];
  for (let i = 0; i < ranges.starts.length; i++) {
    let start = ranges.starts[i]!;
    const end = ranges.ends[i]!;
    while (start < end) {
      const k = space.largestBlock(start, end);
      prefixes.push({ family: space.family, network: space.toBigint(start), length: space.bits - k });
      start = space.add(start, space.blockSize[k]!);
    }
  }
  return prefixes;
}

function rangesOf<N extends number | bigint>(space: Space<N>, prefixes: Iterable<Prefix>): Ranges<N> {
  const networks: N[] = [];
  const lengths: number[] = [];
  for (const p of prefixes) {
    if (p.family !== space.family) continue;
    networks.push(space.fromBigint(p.network));
    lengths.push(p.length);
  }
  return toRanges(space, networks, lengths);
}

/** The unique minimal CIDR cover of the union: IPv4 first, then IPv6, each in address order. */
export function aggregate(prefixes: Iterable<Prefix>): Prefix[] {
  const all = [...prefixes];
  return [...toPrefixes(V4, rangesOf(V4, all)), ...toPrefixes(V6, rangesOf(V6, all))];
}

/** The minimal CIDR cover of the addresses in `from` but not in `remove`. */
export function subtract(from: readonly Prefix[], remove: readonly Prefix[]): Prefix[] {
  return [
    ...toPrefixes(V4, difference(rangesOf(V4, from), rangesOf(V4, remove))),
    ...toPrefixes(V6, difference(rangesOf(V6, from), rangesOf(V6, remove))),
  ];
}

/** The minimal CIDR cover of the family's whole address space minus the set (other families are ignored). */
export function complement(prefixes: readonly Prefix[], family: Family): Prefix[] {
  const whole = <N extends number | bigint>(space: Space<N>): Ranges<N> => ({ starts: [space.zero], ends: [space.end] });
  return family === 4
    ? toPrefixes(V4, difference(whole(V4), rangesOf(V4, prefixes)))
    : toPrefixes(V6, difference(whole(V6), rangesOf(V6, prefixes)));
}
