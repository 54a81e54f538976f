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
// (IPv4 in plain numbers, which are fast and exact below 2^53, IPv6 in word
// strings, see below: bigints cost an allocation per operation).

import type { Hash } from "node:crypto";

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
//
// Scanners walk character codes and allocate nothing, because lists run to a
// million lines. They only decide; when one rejects its input, a describe*
// function says why in words. IPv4 prefixes travel as one number,
// network * 64 + length (below 2^38, exact), which is also their sort key.

const IPV4_KEY_SCALE = 64;

/** IPV4_BLOCK_SIZE[k] = 2^k, the addresses in a block with k host bits. */
const IPV4_BLOCK_SIZE = Array.from({ length: 33 }, (_, k) => 2 ** k);

/** Where the last scanIPv4 stopped: `end`, or the first character that is neither digit nor dot. */
let ipv4End = 0;

/**
 * A dotted quad at text[start, ...) up to `end` or the first character that is
 * neither digit nor dot (see ipv4End, so "a.b.c.d/len" needs one pass): its value,
 * or -1 unless it is exactly 4 decimal parts 0-255 without leading zeros.
 */
function scanIPv4(text: string, start: number, end: number): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  let i = start;
  for (; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if ((digits === 1 && part === 0) || digits === 3) return -1;
      part = part * 10 + (c - 48);
      if (part > 255) return -1;
      digits++;
    } else {
      break;
    }
  }
  ipv4End = i;
  return digits === 0 || dots !== 3 ? -1 : value * 256 + part;
}

/** A dotted quad that is all of text[start, end), or -1. */
function scanWholeIPv4(text: string, start: number, end: number): number {
  const value = scanIPv4(text, start, end);
  return ipv4End === end ? value : -1;
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** The eight 16-bit groups of the IPv6 address last scanned, or about to be formatted. */
const groups = new Uint32Array(8);

/**
 * An RFC 4291 section 2.2 address in text[start, end): eight groups of 1-4 hex
 * digits, or fewer around one "::", the last 32 bits optionally a dotted quad.
 * Whether it is one; its value is left in `groups`.
 */
function scanIPv6(text: string, start: number, end: number): boolean {
  let count = 0;
  let gap = -1;
  let i = start;
  if (text.charCodeAt(i) === 58 /* : */) {
    if (text.charCodeAt(i + 1) !== 58) return false;
    gap = 0;
    i += 2;
  }
  while (i < end) {
    let value = 0;
    let j = i;
    for (let d = hexDigit(text.charCodeAt(j)); j < end && d !== -1; d = hexDigit(text.charCodeAt(++j))) value = value * 16 + d;
    if (j < end && text.charCodeAt(j) === 46 /* . */) {
      const v4 = count <= 6 ? scanWholeIPv4(text, i, end) : -1;
      if (v4 === -1) return false;
      groups[count++] = Math.floor(v4 / 65536);
      groups[count++] = v4 % 65536;
      break;
    }
    if (j === i || j - i > 4 || count === 8) return false;
    groups[count++] = value;
    if (j === end) break;
    if (text.charCodeAt(j) !== 58) return false;
    j++;
    if (text.charCodeAt(j) === 58) {
      if (gap !== -1) return false;
      gap = count;
      j++;
    } else if (j === end) {
      return false;
    }
    i = j;
  }
  if (gap === -1 ? count !== 8 : count > 7) return false;
  if (gap !== -1) {
    const moved = count - gap;
    groups.copyWithin(8 - moved, gap, count);
    groups.fill(0, gap, 8 - moved);
  }
  return true;
}

/** The value of `groups` as a bigint. */
function groupsToBigint(): bigint {
  // Three pieces of at most 48 bits each are exact in doubles.
  const high = groups[0]! * 4294967296 + groups[1]! * 65536 + groups[2]!;
  const middle = groups[3]! * 4294967296 + groups[4]! * 65536 + groups[5]!;
  const low = groups[6]! * 65536 + groups[7]!;
  return (BigInt(high) << 80n) | (BigInt(middle) << 32n) | BigInt(low);
}

/** Puts a 128-bit bigint into `groups`. */
function bigintToGroups(value: bigint): void {
  for (let i = 7; i >= 0; i--, value >>= 16n) groups[i] = Number(value & 0xffffn);
}

/** A prefix length in text[start, end): its value (above 128 when too large), or -1 unless plain decimal digits without sign or leading zeros. */
function scanLength(text: string, start: number, end: number): number {
  if (start === end || end - start > 3) return start === end ? -1 : /^[1-9][0-9]*$/.test(text.slice(start, end)) ? 1000 : -1;
  let value = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57 || (i > start && value === 0)) return -1;
    value = value * 10 + (c - 48);
  }
  return value;
}

const IPV4_PARTS = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/;

/** Why scanIPv4 rejected the text. */
function describeIPv4(text: string): Failure {
  const match = IPV4_PARTS.exec(text);
  if (match === null) return failure("is not an IPv4 address (expected 4 decimal parts separated by dots)");
  for (const part of match.slice(1)) {
    if (part.length > 1 && part.startsWith("0")) {
      const corrected = match.slice(1).map((p) => String(Number(p))).join(".");
      const correctable: Correctable = { ok: false, message: `IPv4 part ${part} has a leading zero (octal or decimal?)`, corrected };
      return correctable;
    }
    if (Number(part) > 255) return failure(`IPv4 part ${part} is out of range (0-255)`);
  }
  return failure("is not an IPv4 address");
}

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/** Why scanIPv6 rejected the text. */
function describeIPv6(text: string): Failure {
  const bad = (why: string) => failure(`is not an IPv6 address (${why})`);
  const halves = text.split("::");
  if (halves.length > 2) return bad('"::" may appear only once');
  const parts = halves.flatMap((half) => (half === "" ? [] : half.split(":")));
  let count = 0;
  for (const [index, part] of parts.entries()) {
    if (part.includes(".") && index === parts.length - 1 && !text.endsWith(":")) {
      if (scanWholeIPv4(part, 0, part.length) === -1) {
        return bad(`IPv4 tail "${part}": ${describeIPv4(part).message.replace(/^is not an IPv4 address \((.*)\)$/, "$1")}`);
      }
      count += 2;
    } else if (part === "") {
      return bad('empty group; only one "::" may stand for zero groups');
    } else if (!HEX_GROUP.test(part)) {
      return bad(`group "${part}" is not 1-4 hex digits`);
    } else {
      count++;
    }
  }
  if (halves.length === 2 && count > 7) return bad(`${count} groups plus "::"; at most 7 with "::"`);
  if (halves.length === 1 && count !== 8) return bad(`${count} groups; 8 expected, or use "::"`);
  return bad("misplaced colon");
}

/** Where character code `c` first occurs in text[start, end), or -1 (indexOf would search past `end`). */
function find(text: string, c: number, start: number, end: number): number {
  for (let i = start; i < end; i++) if (text.charCodeAt(i) === c) return i;
  return -1;
}

/** scanAddress found an IPv6 address; its value is in `groups`. */
const IPV6_IN_GROUPS = "ipv6";

/** The address in text[start, end): IPv4 as a number, IPv6 as IPV6_IN_GROUPS, or why it is neither. */
function scanAddress(text: string, start: number, end: number, noun: string): number | typeof IPV6_IN_GROUPS | Failure {
  if (start === end) return failure("is empty");
  if (find(text, 58 /* : */, start, end) !== -1) return scanIPv6(text, start, end) ? IPV6_IN_GROUPS : describeIPv6(text.slice(start, end));
  const v4 = scanWholeIPv4(text, start, end);
  if (v4 !== -1) return v4;
  return find(text, 46 /* . */, start, end) !== -1 ? describeIPv4(text.slice(start, end)) : failure(`is not an IPv4 or IPv6 ${noun}`);
}

/** The failure as callers see it: whitespace first, and a correction becomes a "did you mean" hint for the whole input. */
function explain(error: Failure, text: string, suffix: string): Failure {
  if (WHITESPACE.test(text)) return failure("contains whitespace");
  if (!("corrected" in error)) return error;
  return failure(error.message, `did you mean "${(error as Correctable).corrected}${suffix}"?`);
}

const WHITESPACE = /\s/;

export function parseAddress(text: string): Parsed<{ family: Family; value: bigint }> {
  if (text.includes("/")) return explain(failure("is a prefix, not a single address"), text, "");
  const address = scanAddress(text, 0, text.length, "address");
  if (isFailure(address)) return explain(address, text, "");
  return { ok: true, value: typeof address === "number" ? { family: 4, value: BigInt(address) } : { family: 6, value: groupsToBigint() } };
}

/**
 * parsePrefix on text[start, end) without building the public object, the fast
 * path for long lists: an IPv4 prefix comes back as its key (network * 64 + length),
 * an IPv6 prefix as its key string (ipv6Key).
 */
function scanPrefix(text: string, start: number, end: number, bareAddress: boolean): number | string | Failure {
  // Most lines are IPv4: one pass finds the quad and where "/" is; anything else takes the general path.
  const ipv4 = scanIPv4(text, start, end);
  let slash = ipv4End < end && text.charCodeAt(ipv4End) === 47 /* / */ ? ipv4End : -1;
  if (ipv4 !== -1 && slash !== -1) {
    // The common line, a well-formed IPv4 prefix, in a few number operations; anything else takes the general path.
    const length = scanLength(text, slash + 1, end);
    if (length >= 0 && length <= 32 && ipv4 % IPV4_BLOCK_SIZE[32 - length]! === 0) return ipv4 * IPV4_KEY_SCALE + length;
  }
  let address: number | typeof IPV6_IN_GROUPS | Failure = ipv4;
  if (address === -1 || (slash === -1 && ipv4End !== end)) {
    slash = find(text, 47, start, end);
    address = scanAddress(text, start, slash === -1 ? end : slash, "prefix");
  }
  const addressEnd = slash === -1 ? end : slash;
  if (isFailure(address)) return explain(address, text.slice(start, end), text.slice(addressEnd, end));
  const bits = typeof address === "number" ? 32 : 128;
  let length = bits;
  if (slash === -1) {
    if (!bareAddress) {
      const line = text.slice(start, end);
      return explain(failure("has no prefix length", `did you mean "${line}/${bits}" (a single address)?`), line, "");
    }
  } else {
    length = scanLength(text, slash + 1, end);
    if (length === -1) {
      const why = slash + 1 === end ? "has an empty prefix length" : "has a bad prefix length (expected a decimal number without sign or leading zeros)";
      return explain(failure(why), text.slice(start, end), "");
    }
    if (length > bits) return failure(`prefix length ${text.slice(slash + 1, end)} is out of range for IPv${bits === 32 ? 4 : 6} (0-${bits})`);
  }
  if (typeof address === "number") {
    const network = address - (address % 2 ** (32 - length));
    if (network !== address) return failure("has host bits set", `did you mean "${formatIPv4(network)}/${length}"?`);
    return network * IPV4_KEY_SCALE + length;
  }
  if (clearHostBits(length)) return failure("has host bits set", `did you mean "${formatGroups()}/${length}"?`);
  return ipv6Key(length);
}

/** Clears the bits of `groups` after the first `length`; whether any was set. */
function clearHostBits(length: number): boolean {
  let cleared = false;
  for (let i = 0; i < 8; i++) {
    const hostBits = Math.min(16, Math.max(0, 16 * (i + 1) - length));
    const network = hostBits === 16 ? 0 : (groups[i]! >>> hostBits) << hostBits;
    if (network !== groups[i]) {
      groups[i] = network;
      cleared = true;
    }
  }
  return cleared;
}

function publicPrefix(scanned: number | string): Prefix {
  if (typeof scanned === "string") return { family: 6, network: wordsToBigint(scanned), length: scanned.charCodeAt(V6_WORDS) };
  const network = Math.floor(scanned / IPV4_KEY_SCALE);
  return { family: 4, network: BigInt(network), length: scanned - network * IPV4_KEY_SCALE };
}

/**
 * Parses "address/length" strictly. With `bareAddress`, an address without a
 * length stands for itself (/32 or /128), as in prefix list files.
 */
export function parsePrefix(text: string, options: { bareAddress?: boolean } = {}): Parsed<Prefix> {
  const scanned = scanPrefix(text, 0, text.length, options.bareAddress ?? false);
  return isFailure(scanned) ? scanned : { ok: true, value: publicPrefix(scanned) };
}

// ---------------------------------------------------------------------------
// Formatting

function formatIPv4(value: number): string {
  return `${Math.floor(value / 16777216)}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

/** `groups` in RFC 5952 form: lowercase, no leading zeros, the longest run (first if tied) of two or more zero groups as "::". */
function formatGroups(): string {
  // Section 5: IPv4-mapped addresses keep their dotted IPv4 tail.
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `::ffff:${formatIPv4(groups[6]! * 65536 + groups[7]!)}`;
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  let text = "";
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      text += i === 0 ? "::" : ":";
      i += bestLength - 1;
    } else {
      text += i === 7 ? groups[i]!.toString(16) : `${groups[i]!.toString(16)}:`;
    }
  }
  return text;
}

export function formatAddress(family: Family, value: bigint): string {
  if (family === 4) return formatIPv4(Number(value));
  bigintToGroups(value);
  return formatGroups();
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
interface Space<N extends number | string> {
  readonly bits: number;
  /** 2^bits: one past the highest address. */
  readonly end: N;
  /** blockSize[k] = 2^k. */
  readonly blockSize: readonly N[];
  add(a: N, b: N): N;
  /** log2 of the largest CIDR block that starts at `start` and ends at or before `end`. */
  largestBlock(start: N, end: N): number;
  format(network: N, length: number): string;
  /** How many blocks the decomposition of [start, end) has, in constant time (see below). */
  countBlocks(start: N, end: N): number;
}

/*
 * Counting the blocks of [a, b) without decomposing: let m be the highest bit in
 * which a and b differ and c = b with its low m bits cleared. The greedy cover
 * climbs from a to the aligned c in one block per set bit of c - a, then
 * descends from c to b in one block per set bit of b - c.
 */
function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

/** Sorted, disjoint, non-adjacent half-open ranges [starts[i], ends[i]). */
interface Ranges<N> {
  readonly starts: N[];
  readonly ends: N[];
}

const V4: Space<number> = {
  bits: 32,
  end: 2 ** 32,
  blockSize: IPV4_BLOCK_SIZE,
  add: (a, b) => a + b,
  largestBlock(start, end) {
    // start & -start isolates the lowest set bit (ToInt32 keeps it right up to 2^31).
    const aligned = start === 0 ? 32 : 31 - Math.clz32(start & -start);
    const span = end - start;
    const fits = span >= 2 ** 32 ? 32 : 31 - Math.clz32(span);
    return aligned < fits ? aligned : fits;
  },
  format: (network, length) => `${formatIPv4(network)}/${length}`,
  countBlocks(start, end) {
    // 2^32 does not fit the 32-bit operators; a range reaching the top needs no split at c.
    if (end === 2 ** 32) return start === 0 ? 1 : popcount32(end - start);
    const m = 31 - Math.clz32((start ^ end) >>> 0);
    const c = end - (end % 2 ** m);
    return popcount32(c - start) + popcount32(end - c);
  },
};

/*
 * IPv6 values in the range algorithms are word strings: 9 UTF-16 code units, a
 * carry (1 only for 2^128, the end of the space) and then the 8 groups, most
 * significant first. Strings of equal length compare code unit by code unit, so
 * `<` and a plain sort() order them as numbers, and the arithmetic below works
 * on 16-bit words in scratch arrays: no bigint is made per address.
 */
const V6_WORDS = 9;
const wordsA = new Uint32Array(V6_WORDS);
const wordsB = new Uint32Array(V6_WORDS);
const wordsC = new Uint32Array(V6_WORDS);

function loadWords(value: string, into: Uint32Array): void {
  for (let i = 0; i < V6_WORDS; i++) into[i] = value.charCodeAt(i);
}

function wordString(w: Uint32Array): string {
  return String.fromCharCode(w[0]!, w[1]!, w[2]!, w[3]!, w[4]!, w[5]!, w[6]!, w[7]!, w[8]!);
}

/** `groups` as a word string, followed by the prefix length: sorting keys sorts prefixes by network. */
function ipv6Key(length: number): string {
  return String.fromCharCode(0, groups[0]!, groups[1]!, groups[2]!, groups[3]!, groups[4]!, groups[5]!, groups[6]!, groups[7]!, length);
}

function wordsToBigint(value: string): bigint {
  for (let i = 0; i < 8; i++) groups[i] = value.charCodeAt(i + 1);
  return groupsToBigint() + (value.charCodeAt(0) === 1 ? 1n << 128n : 0n);
}

/** into = a - b, for a >= b. */
function subtractWords(a: Uint32Array, b: Uint32Array, into: Uint32Array): void {
  let borrow = 0;
  for (let i = V6_WORDS - 1; i >= 0; i--) {
    const difference = a[i]! - b[i]! - borrow;
    borrow = difference < 0 ? 1 : 0;
    into[i] = difference & 0xffff;
  }
}

/** floor(log2(w)) for w > 0. */
function highestBit(w: Uint32Array): number {
  let i = 0;
  while (w[i] === 0) i++;
  return (V6_WORDS - 1 - i) * 16 + 31 - Math.clz32(w[i]!);
}

function popcountWords(w: Uint32Array): number {
  let count = 0;
  for (let i = 0; i < V6_WORDS; i++) count += popcount32(w[i]!);
  return count;
}

const V6_ZERO = wordString(new Uint32Array(V6_WORDS));

const V6: Space<string> = {
  bits: 128,
  end: String.fromCharCode(1, 0, 0, 0, 0, 0, 0, 0, 0),
  blockSize: Array.from({ length: 129 }, (_, k) => {
    wordsA.fill(0);
    wordsA[V6_WORDS - 1 - (k >> 4)] = 1 << (k & 15);
    return wordString(wordsA);
  }),
  add(a, b) {
    loadWords(a, wordsA);
    loadWords(b, wordsB);
    let carry = 0;
    for (let i = V6_WORDS - 1; i >= 0; i--) {
      const sum = wordsA[i]! + wordsB[i]! + carry;
      wordsA[i] = sum & 0xffff;
      carry = sum >>> 16;
    }
    return wordString(wordsA);
  },
  largestBlock(start, end) {
    let aligned = 128;
    for (let i = V6_WORDS - 1; i > 0; i--) {
      const w = start.charCodeAt(i);
      if (w !== 0) {
        aligned = (V6_WORDS - 1 - i) * 16 + 31 - Math.clz32(w & -w);
        break;
      }
    }
    loadWords(end, wordsA);
    loadWords(start, wordsB);
    subtractWords(wordsA, wordsB, wordsC);
    const fits = highestBit(wordsC);
    return aligned < fits ? aligned : fits;
  },
  format(network, length) {
    for (let i = 0; i < 8; i++) groups[i] = network.charCodeAt(i + 1);
    return `${formatGroups()}/${length}`;
  },
  countBlocks(start, end) {
    loadWords(start, wordsA);
    loadWords(end, wordsB);
    for (let i = 0; i < V6_WORDS; i++) wordsC[i] = wordsA[i]! ^ wordsB[i]!;
    const m = highestBit(wordsC);
    // wordsC = c: end with its low m bits cleared.
    for (let i = 0; i < V6_WORDS; i++) {
      const lowBits = Math.min(16, Math.max(0, m - (V6_WORDS - 1 - i) * 16));
      wordsC[i] = lowBits === 16 ? 0 : (wordsB[i]! >>> lowBits) << lowBits;
    }
    subtractWords(wordsB, wordsC, wordsB); // end - c
    subtractWords(wordsC, wordsA, wordsA); // c - start
    return popcountWords(wordsA) + popcountWords(wordsB);
  },
};

/** Appends [start, end) to ranges built in order of start, merged into the last one where they overlap or touch. */
function appendMerging<N extends number | string>(starts: N[], ends: N[], start: N, end: N): void {
  const last = ends.length - 1;
  if (last >= 0 && start <= ends[last]!) {
    if (end > ends[last]!) ends[last] = end;
  } else {
    starts.push(start);
    ends.push(end);
  }
}

/** Maximal ranges covering the given blocks of one family, given in order of their networks. */
function toRanges<N extends number | string>(space: Space<N>, networks: ArrayLike<N>, lengths: ArrayLike<number>): Ranges<N> {
  const starts: N[] = [];
  const ends: N[] = [];
  for (let i = 0; i < networks.length; i++) {
    const start = networks[i]!;
    appendMerging(starts, ends, start, space.add(start, space.blockSize[space.bits - lengths[i]!]!));
  }
  return { starts, ends };
}

/** a \ b, both maximal ranges (nothing to remove returns a as it is). */
function difference<N extends number | string>(a: Ranges<N>, b: Ranges<N>): Ranges<N> {
  if (b.starts.length === 0 || a.starts.length === 0) return a;
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

/** Visits the blocks of the unique minimal CIDR cover of maximal ranges, in address order. */
function forEachBlock<N extends number | string>(space: Space<N>, ranges: Ranges<N>, visit: (network: N, length: number) => void): void {
  for (let i = 0; i < ranges.starts.length; i++) {
    let start = ranges.starts[i]!;
    const end = ranges.ends[i]!;
    while (start < end) {
      const k = space.largestBlock(start, end);
      visit(start, space.bits - k);
      start = space.add(start, space.blockSize[k]!);
    }
  }
}

/** a ∪ b, both maximal ranges. Ranges are never changed once built, so an empty side returns the other as it is. */
function union<N extends number | string>(a: Ranges<N>, b: Ranges<N>): Ranges<N> {
  if (b.starts.length === 0) return a;
  if (a.starts.length === 0) return b;
  const starts: N[] = [];
  const ends: N[] = [];
  let i = 0;
  let j = 0;
  while (i < a.starts.length || j < b.starts.length) {
    const fromA = j === b.starts.length || (i < a.starts.length && a.starts[i]! <= b.starts[j]!);
    const start = fromA ? a.starts[i]! : b.starts[j]!;
    appendMerging(starts, ends, start, fromA ? a.ends[i++]! : b.ends[j++]!);
  }
  return { starts, ends };
}

const EMPTY_V4: Ranges<number> = { starts: [], ends: [] };
const EMPTY_V6: Ranges<string> = { starts: [], ends: [] };

/**
 * A set of IPv4 and IPv6 addresses, kept as maximal ranges per family. Every set
 * operation of this module goes through it; large prefix lists use it directly
 * so that no per-prefix object is ever built for them.
 */
export class AddressSet {
  /** From maximal ranges; build sets with `of`, `whole` or an AddressSetBuilder. */
  constructor(
    private readonly v4: Ranges<number>,
    private readonly v6: Ranges<string>,
  ) {}

  static readonly EMPTY = new AddressSet(EMPTY_V4, EMPTY_V6);

  /**
   * Feeds the set's maximal ranges into a hash: equal sets hash alike, however their prefixes
   * were written. IPv4 bounds go in as little-endian doubles on every machine (joining a
   * million numbers as text costs more).
   */
  updateHash(hash: Hash): void {
    const doubles = (values: readonly number[]) => {
      const bytes = Buffer.allocUnsafe(values.length * 8);
      values.forEach((value, i) => bytes.writeDoubleLE(value, i * 8));
      return bytes;
    };
    hash.update(doubles(this.v4.starts)).update(doubles(this.v4.ends));
    hash.update(`|${this.v6.starts.join(",")}/${this.v6.ends.join(",")}|`);
  }

  static whole(family: Family): AddressSet {
    return family === 4
      ? new AddressSet({ starts: [0], ends: [V4.end] }, EMPTY_V6)
      : new AddressSet(EMPTY_V4, { starts: [V6_ZERO], ends: [V6.end] });
  }

  static of(prefixes: Iterable<Prefix>): AddressSet {
    const builder = new AddressSetBuilder();
    for (const p of prefixes) builder.add(p);
    return builder.build();
  }

  union(other: AddressSet): AddressSet {
    return new AddressSet(union(this.v4, other.v4), union(this.v6, other.v6));
  }

  minus(other: AddressSet): AddressSet {
    return new AddressSet(difference(this.v4, other.v4), difference(this.v6, other.v6));
  }

  isEmpty(): boolean {
    return this.v4.starts.length === 0 && this.v6.starts.length === 0;
  }

  /** The addresses of one family only. */
  only(family: Family): AddressSet {
    return family === 4 ? new AddressSet(this.v4, EMPTY_V6) : new AddressSet(EMPTY_V4, this.v6);
  }

  /** The family's whole space minus this set. */
  complement(family: Family): AddressSet {
    return AddressSet.whole(family).minus(this);
  }

  /**
   * How many prefixes the family's minimal cover has, without building it: decides
   * between equivalent forms cheaply. Exact below `atMost`; otherwise at least `atMost`.
   */
  prefixCount(family: Family, atMost = Infinity): number {
    // Stops once the count reaches atMost (returning at least atMost): enough to tell which form is cheaper.
    const count = <N extends number | string>(space: Space<N>, ranges: Ranges<N>) => {
      let total = 0;
      for (let i = 0; i < ranges.starts.length && total < atMost; i++) total += space.countBlocks(ranges.starts[i]!, ranges.ends[i]!);
      return total;
    };
    return family === 4 ? count(V4, this.v4) : count(V6, this.v6);
  }

  /** The unique minimal CIDR cover: IPv4 first, then IPv6, each in address order. */
  prefixes(): Prefix[] {
    const prefixes: Prefix[] = [];
    forEachBlock(V4, this.v4, (network, length) => prefixes.push({ family: 4, network: BigInt(network), length }));
    forEachBlock(V6, this.v6, (network, length) => prefixes.push({ family: 6, network: wordsToBigint(network), length }));
    return prefixes;
  }

  /**
   * The same cover as prefixes(), already formatted as formatPrefix would:
   * large sets go straight to text without a bigint per prefix.
   */
  cidrs(): string[] {
    const texts: string[] = [];
    forEachBlock(V4, this.v4, (network, length) => texts.push(V4.format(network, length)));
    forEachBlock(V6, this.v6, (network, length) => texts.push(V6.format(network, length)));
    return texts;
  }
}

/**
 * The order of `count` IPv6 networks (8 groups each) by value: a radix sort, one
 * counting pass per group from the last, because comparing 128-bit values in a
 * sort callback (as bigints or strings) is several times slower.
 */
function sortIPv6(networks: Uint16Array, count: number): Uint32Array {
  let order = Uint32Array.from({ length: count }, (_, i) => i);
  let sorted = new Uint32Array(count);
  const starts = new Uint32Array(65537);
  for (let group = 7; group >= 0; group--) {
    starts.fill(0);
    for (let i = 0; i < count; i++) starts[networks[8 * i + group]! + 1]!++;
    for (let v = 0; v < 65536; v++) starts[v + 1]! += starts[v]!;
    for (let i = 0; i < count; i++) {
      const index = order[i]!;
      sorted[starts[networks[8 * index + group]!]!++] = index;
    }
    [order, sorted] = [sorted, order];
  }
  return order;
}

/** Collects prefixes, from objects or from text, into an AddressSet. */
export class AddressSetBuilder {
  /** IPv4 prefixes as keys network * 64 + length: one double each, sortable natively. */
  private v4Keys = new Float64Array(1024);
  private v4Count = 0;
  /** IPv6 prefixes: the 8 groups of each network in v6Groups, its length in v6Lengths. */
  private v6Groups = new Uint16Array(8 * 1024);
  private v6Lengths = new Uint8Array(1024);
  private v6Count = 0;

  add(p: Prefix): void {
    if (p.family === 4) {
      this.addIPv4(Number(p.network) * IPV4_KEY_SCALE + p.length);
    } else {
      bigintToGroups(p.network);
      this.addIPv6(p.length);
    }
  }

  /**
   * Parses text[start, end) like parsePrefix and adds the prefix, or returns why
   * it is not one (adding nothing). Ranges let a list reader skip slicing lines.
   */
  addText(text: string, bareAddress: boolean, start = 0, end = text.length): { message: string; hint?: string } | undefined {
    const scanned = scanPrefix(text, start, end, bareAddress);
    if (typeof scanned === "number") this.addIPv4(scanned);
    else if (!isFailure(scanned)) this.addIPv6(scanned.charCodeAt(V6_WORDS)); // scanPrefix left the network in `groups`
    else return scanned.hint === undefined ? { message: scanned.message } : { message: scanned.message, hint: scanned.hint };
    return undefined;
  }

  private addIPv4(key: number): void {
    if (this.v4Count === this.v4Keys.length) {
      const grown = new Float64Array(this.v4Keys.length * 2);
      grown.set(this.v4Keys);
      this.v4Keys = grown;
    }
    this.v4Keys[this.v4Count++] = key;
  }

  /** Adds the IPv6 prefix whose network is in `groups`. */
  private addIPv6(length: number): void {
    if (this.v6Count === this.v6Lengths.length) {
      const grownGroups = new Uint16Array(this.v6Groups.length * 2);
      grownGroups.set(this.v6Groups);
      this.v6Groups = grownGroups;
      const grownLengths = new Uint8Array(this.v6Lengths.length * 2);
      grownLengths.set(this.v6Lengths);
      this.v6Lengths = grownLengths;
    }
    this.v6Groups.set(groups, 8 * this.v6Count);
    this.v6Lengths[this.v6Count++] = length;
  }

  /** The set of every address added so far; the builder starts over empty. */
  build(): AddressSet {
    // A comparator-free typed-array sort is several times faster than one with a callback.
    const keys = this.v4Keys.subarray(0, this.v4Count).sort();
    const v4Networks = new Float64Array(keys.length);
    const v4Lengths = new Uint8Array(keys.length);
    for (let i = 0; i < keys.length; i++) {
      v4Networks[i] = Math.floor(keys[i]! / IPV4_KEY_SCALE);
      v4Lengths[i] = keys[i]! - v4Networks[i]! * IPV4_KEY_SCALE;
    }
    const order = sortIPv6(this.v6Groups, this.v6Count);
    const v6Networks: string[] = [];
    const v6Lengths = new Uint8Array(order.length);
    for (let i = 0; i < order.length; i++) {
      const g = 8 * order[i]!;
      const w = this.v6Groups;
      v6Networks.push(String.fromCharCode(0, w[g]!, w[g + 1]!, w[g + 2]!, w[g + 3]!, w[g + 4]!, w[g + 5]!, w[g + 6]!, w[g + 7]!));
      v6Lengths[i] = this.v6Lengths[order[i]!]!;
    }
    const set = new AddressSet(toRanges(V4, v4Networks, v4Lengths), toRanges(V6, v6Networks, v6Lengths));
    this.v4Keys = new Float64Array(1024);
    this.v4Count = 0;
    this.v6Groups = new Uint16Array(8 * 1024);
    this.v6Lengths = new Uint8Array(1024);
    this.v6Count = 0;
    return set;
  }
}

/** The unique minimal CIDR cover of the union: IPv4 first, then IPv6, each in address order. */
export function aggregate(prefixes: Iterable<Prefix>): Prefix[] {
  return AddressSet.of(prefixes).prefixes();
}

/** The minimal CIDR cover of the addresses in `from` but not in `remove`. */
export function subtract(from: readonly Prefix[], remove: readonly Prefix[]): Prefix[] {
  return AddressSet.of(from).minus(AddressSet.of(remove)).prefixes();
}

/** The minimal CIDR cover of the family's whole address space minus the set (other families are ignored). */
export function complement(prefixes: readonly Prefix[], family: Family): Prefix[] {
  return AddressSet.of(prefixes).complement(family).prefixes();
}
