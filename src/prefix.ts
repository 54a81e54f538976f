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
// algorithms are written once for both families, over addresses kept as rows of
// 32-bit limbs in typed arrays (see below: bigints or strings would cost an
// allocation per operation).

import { quoteText } from "./text.js";
import type { Hash } from "node:crypto";
import { endianness } from "node:os";

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

/** POWER[k] = 2^k, for k in 0-32: the addresses in an IPv4 block with k host bits. */
const POWER = Array.from({ length: 33 }, (_, k) => 2 ** k);

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

/** HEX_VALUE[c] = the value of hex digit c (ASCII), or -1. */
const HEX_VALUE = Int8Array.from({ length: 128 }, (_, c) => "0123456789abcdef".indexOf(String.fromCharCode(c).toLowerCase()));

function hexDigit(c: number): number {
  return c < 128 ? HEX_VALUE[c]! : -1;
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
    for (; j < end; j++) {
      const d = hexDigit(text.charCodeAt(j));
      if (d === -1) break;
      value = value * 16 + d;
    }
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
/** A run of digits from the input, as messages show it: cut when it is long. */
const digits = (text: string) => (text.length <= 24 ? text : `${text.slice(0, 24)}… (${text.length} digits)`);

function describeIPv4(text: string): Failure {
  const match = IPV4_PARTS.exec(text);
  if (match === null) return failure("is not an IPv4 address (expected 4 decimal parts separated by dots)");
  for (const part of match.slice(1)) {
    if (part.length > 1 && part.startsWith("0")) {
      const corrected = match.slice(1).map((p) => String(Number(p))).join(".");
      const correctable: Correctable = { ok: false, message: `IPv4 part ${digits(part)} has a leading zero (octal or decimal?)`, corrected };
      return correctable;
    }
    if (Number(part) > 255) return failure(`IPv4 part ${digits(part)} is out of range (0-255)`);
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
        return bad(`IPv4 tail ${quoteText(part)}: ${describeIPv4(part).message.replace(/^is not an IPv4 address \((.*)\)$/, "$1")}`);
      }
      count += 2;
    } else if (part === "") {
      return bad('empty group; only one "::" may stand for zero groups');
    } else if (!HEX_GROUP.test(part)) {
      return bad(`group ${quoteText(part)} is not 1-4 hex digits`);
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
 * an IPv6 prefix as ipv6Scanned(length) with its network left in `groups`.
 */
function scanPrefix(text: string, start: number, end: number, bareAddress: boolean): number | Failure {
  // Most lines are IPv4: one pass finds the quad and where "/" is; anything else takes the general path.
  const ipv4 = scanIPv4(text, start, end);
  const slash = ipv4End < end && text.charCodeAt(ipv4End) === 47 /* / */ ? ipv4End : -1;
  if (ipv4 !== -1 && slash !== -1) {
    // The common line, a well-formed IPv4 prefix, in a few number operations; anything else takes the general path.
    const length = scanLength(text, slash + 1, end);
    if (length >= 0 && length <= 32 && ipv4 % POWER[32 - length]! === 0) return ipv4 * IPV4_KEY_SCALE + length;
  }
  if (ipv4 === -1) {
    // The common IPv6 line, without a search through the line for "/": it is among the last four characters.
    let at = end - 1;
    while (at > start && at >= end - 4 && text.charCodeAt(at) !== 47 /* / */) at--;
    if (text.charCodeAt(at) !== 47) {
      if (bareAddress && scanIPv6(text, start, end)) return ipv6Scanned(128);
    } else if (scanIPv6(text, start, at)) {
      const length = scanLength(text, at + 1, end);
      if (length >= 0 && length <= 128 && !clearHostBits(length)) return ipv6Scanned(length);
    }
  }
  return scanAnyPrefix(text, start, end, bareAddress);
}

/**
 * scanPrefix's general path, for every line its fast paths do not take: each
 * spelling in full, and why a line is not a prefix. Kept apart so that the fast
 * paths stay small, and quick for V8 to optimise while a long list is read.
 */
function scanAnyPrefix(text: string, start: number, end: number, bareAddress: boolean): number | Failure {
  const ipv4 = scanIPv4(text, start, end);
  let slash = ipv4End < end && text.charCodeAt(ipv4End) === 47 /* / */ ? ipv4End : -1;
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
    if (length > bits) return failure(`prefix length ${digits(text.slice(slash + 1, end))} is out of range for IPv${bits === 32 ? 4 : 6} (0-${bits})`);
  }
  if (typeof address === "number") {
    const network = address - (address % 2 ** (32 - length));
    if (network !== address) return failure("has host bits set", `did you mean "${formatIPv4(network)}/${length}"?`);
    return network * IPV4_KEY_SCALE + length;
  }
  if (clearHostBits(length)) return failure("has host bits set", `did you mean "${formatGroups()}/${length}"?`);
  return ipv6Scanned(length);
}

/** scanPrefix's answer for an IPv6 prefix: negative, so it cannot be mistaken for an IPv4 key. */
const ipv6Scanned = (length: number) => -1 - length;
const ipv6ScannedLength = (scanned: number) => -1 - scanned;

/** Clears the bits of `groups` after the first `length`; whether any was set. */
function clearHostBits(length: number): boolean {
  let cleared = false;
  for (let i = length >> 4; i < 8; i++) {
    const hostBits = 16 * (i + 1) - length; // of group i: 1-16, as i starts at the group that holds bit `length`
    const network = hostBits >= 16 ? 0 : (groups[i]! >>> hostBits) << hostBits;
    if (network !== groups[i]) {
      groups[i] = network;
      cleared = true;
    }
  }
  return cleared;
}

function publicPrefix(scanned: number): Prefix {
  if (scanned < 0) return { family: 6, network: groupsToBigint(), length: ipv6ScannedLength(scanned) };
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
//
// A set of one family is a list of sorted, disjoint, non-adjacent half-open ranges
// [start, end). An address is a row of 32-bit limbs, most significant first, in a
// Float64Array: one limb for IPv4, four for IPv6. A double holds 2^32 exactly, so the
// top limb also holds the end of the space (2^32, or 2^128 as [2^32, 0, 0, 0]). The
// range algorithms are written once over rows of limbs and make no object per address:
// bigints cost an allocation per operation, strings one per value, and a million-line
// list is a million of them.

const LIMB = 2 ** 32;

/** Limbs per address: IPv4, IPv6. */
const V4_LIMBS = 1;
const V6_LIMBS = 4;

/** Sorted, disjoint, non-adjacent half-open ranges of one family: range r is [row r of starts, row r of ends). */
interface Ranges {
  /** Limbs per address: V4_LIMBS or V6_LIMBS. */
  readonly limbs: number;
  readonly count: number;
  readonly starts: Float64Array;
  readonly ends: Float64Array;
}

/** Scratch rows for the arithmetic below (one row each, IPv6-sized). */
const span = new Float64Array(4);
const cut = new Float64Array(4);

/** Row i of x compared with row j of y: negative, zero or positive. */
function compare(x: Float64Array, i: number, y: Float64Array, j: number, limbs: number): number {
  for (let k = 0, a = i * limbs, b = j * limbs; k < limbs; k++) {
    const difference = x[a + k]! - y[b + k]!;
    if (difference !== 0) return difference;
  }
  return 0;
}

function copyRow(from: Float64Array, i: number, to: Float64Array, j: number, limbs: number): void {
  for (let k = 0, a = i * limbs, b = j * limbs; k < limbs; k++) to[b + k] = from[a + k]!;
}

/** Adds 2^k to row i (k at most the space's bits, then only to 0); the top limb may reach the end of the space. */
function addPowerOfTwo(x: Float64Array, i: number, k: number, limbs: number): void {
  const top = i * limbs;
  if (k === 32 * limbs) {
    x[top] = LIMB;
    return;
  }
  let at = top + limbs - 1 - (k >>> 5);
  x[at] += POWER[k & 31]!;
  while (at > top && x[at] === LIMB) {
    x[at] = 0;
    x[--at] += 1;
  }
}

/** into's first row = row i of x - row j of y, for x >= y. */
function subtractRows(x: Float64Array, i: number, y: Float64Array, j: number, into: Float64Array, limbs: number): void {
  let borrow = 0;
  for (let k = limbs - 1; k >= 0; k--) {
    const difference = x[i * limbs + k]! - y[j * limbs + k]! - borrow;
    borrow = difference < 0 ? 1 : 0;
    into[k] = difference < 0 ? difference + LIMB : difference;
  }
}

/** floor(log2(x)) of x's first row, for x > 0. */
function highestBit(x: Float64Array, limbs: number): number {
  let k = 0;
  while (x[k] === 0) k++;
  const w = x[k]!;
  return (limbs - 1 - k) * 32 + (w === LIMB ? 32 : 31 - Math.clz32(w));
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** The 1 bits of x's first row, every limb below 2^32. */
function popcountRow(x: Float64Array, limbs: number): number {
  let count = 0;
  for (let k = 0; k < limbs; k++) count += popcount32(x[k]!);
  return count;
}

/** log2 of the largest CIDR block that starts at row i of `starts` and ends at or before row j of `ends`. */
function largestBlock(starts: Float64Array, i: number, ends: Float64Array, j: number, limbs: number): number {
  let aligned = 32 * limbs;
  for (let k = limbs - 1; k >= 0; k--) {
    const w = starts[i * limbs + k]!;
    // w & -w isolates the lowest set bit (ToInt32 keeps it right up to 2^31).
    if (w !== 0) {
      aligned = (limbs - 1 - k) * 32 + 31 - Math.clz32(w & -w);
      break;
    }
  }
  subtractRows(ends, j, starts, i, span, limbs);
  const fits = highestBit(span, limbs);
  return aligned < fits ? aligned : fits;
}

/*
 * Counting the blocks of [a, b) without decomposing: let m be the highest bit in
 * which a and b differ and c = b with its low m bits cleared. The greedy cover
 * climbs from a to the aligned c in one block per set bit of c - a, then
 * descends from c to b in one block per set bit of b - c. A range that reaches
 * the end of the space only climbs.
 */
function countBlocks(starts: Float64Array, i: number, ends: Float64Array, j: number, limbs: number): number {
  if (ends[j * limbs] === LIMB) {
    subtractRows(ends, j, starts, i, span, limbs);
    return span[0] === LIMB ? 1 : popcountRow(span, limbs);
  }
  let k = 0;
  while (starts[i * limbs + k] === ends[j * limbs + k]) k++;
  const m = (limbs - 1 - k) * 32 + 31 - Math.clz32((starts[i * limbs + k]! ^ ends[j * limbs + k]!) >>> 0);
  for (let t = 0; t < limbs; t++) {
    const below = m - (limbs - 1 - t) * 32; // bits of limb t below bit m
    const w = ends[j * limbs + t]!;
    cut[t] = below <= 0 ? w : below >= 32 ? 0 : w - (w % POWER[below]!);
  }
  subtractRows(cut, 0, starts, i, span, limbs);
  const climbing = popcountRow(span, limbs);
  subtractRows(ends, j, cut, 0, span, limbs);
  return climbing + popcountRow(span, limbs);
}

/** Builds ranges in order of start, with room for `capacity` of them. */
class RangeWriter {
  private readonly starts: Float64Array;
  private readonly ends: Float64Array;
  private count = 0;

  constructor(private readonly limbs: number, capacity: number) {
    this.starts = new Float64Array(capacity * limbs);
    this.ends = new Float64Array(capacity * limbs);
  }

  /** Appends [row i of x, row j of y), which starts after a gap behind the last range. */
  push(x: Float64Array, i: number, y: Float64Array, j: number): void {
    copyRow(x, i, this.starts, this.count, this.limbs);
    copyRow(y, j, this.ends, this.count++, this.limbs);
  }

  /** Appends [row i of x, row j of y), merged into the last range where they overlap or touch. */
  append(x: Float64Array, i: number, y: Float64Array, j: number): void {
    const last = this.count - 1;
    if (last >= 0 && compare(x, i, this.ends, last, this.limbs) <= 0) {
      if (compare(y, j, this.ends, last, this.limbs) > 0) copyRow(y, j, this.ends, last, this.limbs);
    } else {
      this.push(x, i, y, j);
    }
  }

  ranges(): Ranges {
    const used = this.count * this.limbs;
    return { limbs: this.limbs, count: this.count, starts: this.starts.subarray(0, used), ends: this.ends.subarray(0, used) };
  }
}

/** Maximal ranges covering the blocks given as rows of networks in order and their lengths. */
function toRanges(limbs: number, networks: Float64Array, lengths: Uint8Array): Ranges {
  const bits = 32 * limbs;
  const writer = new RangeWriter(limbs, lengths.length);
  const end = new Float64Array(limbs);
  for (let i = 0; i < lengths.length; i++) {
    copyRow(networks, i, end, 0, limbs);
    addPowerOfTwo(end, 0, bits - lengths[i]!, limbs);
    writer.append(networks, i, end, 0);
  }
  return writer.ranges();
}

/** a \ b, both maximal ranges (nothing to remove returns a as it is). */
function difference(a: Ranges, b: Ranges): Ranges {
  if (b.count === 0 || a.count === 0) return a;
  const { limbs } = a;
  const writer = new RangeWriter(limbs, a.count + b.count);
  const current = new Float64Array(limbs);
  let j = 0;
  for (let i = 0; i < a.count; i++) {
    copyRow(a.starts, i, current, 0, limbs);
    while (j < b.count && compare(b.ends, j, current, 0, limbs) <= 0) j++;
    for (let k = j; k < b.count && compare(b.starts, k, a.ends, i, limbs) < 0 && compare(current, 0, a.ends, i, limbs) < 0; k++) {
      if (compare(b.starts, k, current, 0, limbs) > 0) writer.push(current, 0, b.starts, k);
      if (compare(b.ends, k, current, 0, limbs) > 0) copyRow(b.ends, k, current, 0, limbs);
    }
    if (compare(current, 0, a.ends, i, limbs) < 0) writer.push(current, 0, a.ends, i);
  }
  return writer.ranges();
}

/** a ∪ b, both maximal ranges. Ranges are never changed once built, so an empty side returns the other as it is. */
function union(a: Ranges, b: Ranges): Ranges {
  if (b.count === 0) return a;
  if (a.count === 0) return b;
  const { limbs } = a;
  const writer = new RangeWriter(limbs, a.count + b.count);
  let i = 0;
  let j = 0;
  while (i < a.count || j < b.count) {
    if (j === b.count || (i < a.count && compare(a.starts, i, b.starts, j, limbs) <= 0)) writer.append(a.starts, i, a.ends, i++);
    else writer.append(b.starts, j, b.ends, j++);
  }
  return writer.ranges();
}

/** Visits the blocks of the unique minimal CIDR cover of maximal ranges, in address order; `network` is a scratch row. */
function forEachBlock(ranges: Ranges, visit: (network: Float64Array, length: number) => void): void {
  const { limbs } = ranges;
  const bits = 32 * limbs;
  const network = new Float64Array(limbs);
  for (let i = 0; i < ranges.count; i++) {
    copyRow(ranges.starts, i, network, 0, limbs);
    while (compare(network, 0, ranges.ends, i, limbs) < 0) {
      const k = largestBlock(network, 0, ranges.ends, i, limbs);
      visit(network, bits - k);
      addPowerOfTwo(network, 0, k, limbs);
    }
  }
}

/**
 * The minimal cover of maximal ranges cut into consecutive pieces: the first of `first` blocks,
 * the others of `size` (the last of what is left). A range cut at a block boundary keeps its
 * blocks (the greedy cover of each part is the whole's), so the pieces' covers, in order, are
 * exactly the whole cover.
 */
function splitCover(ranges: Ranges, first: number, size: number): Ranges[] {
  const { limbs } = ranges;
  const pieces: Ranges[] = [];
  const network = new Float64Array(limbs);
  const pieceStart = new Float64Array(limbs);
  let quota = first;
  let taken = 0;
  let writer = new RangeWriter(limbs, Math.min(quota, ranges.count));
  for (let i = 0; i < ranges.count; i++) {
    copyRow(ranges.starts, i, network, 0, limbs);
    copyRow(network, 0, pieceStart, 0, limbs);
    while (compare(network, 0, ranges.ends, i, limbs) < 0) {
      addPowerOfTwo(network, 0, largestBlock(network, 0, ranges.ends, i, limbs), limbs);
      if (++taken === quota) {
        writer.push(pieceStart, 0, network, 0);
        pieces.push(writer.ranges());
        quota = size;
        taken = 0;
        writer = new RangeWriter(limbs, Math.min(quota, ranges.count - i));
        copyRow(network, 0, pieceStart, 0, limbs);
      }
    }
    if (compare(pieceStart, 0, ranges.ends, i, limbs) < 0) writer.push(pieceStart, 0, ranges.ends, i);
  }
  if (taken > 0) pieces.push(writer.ranges());
  return pieces;
}

/**
 * Where membership changes across the family's space, in address order: every start of a
 * range but the space's own, and every end of one but the space's (so none is zero). Row i
 * of `at` is boundary i; `after[i]` says whether the addresses from it on (up to the next)
 * lie in the ranges.
 */
export interface Boundaries {
  readonly limbs: number;
  readonly count: number;
  readonly at: Float64Array;
  readonly after: Uint8Array;
}

function isZeroRow(x: Float64Array, i: number, limbs: number): boolean {
  for (let k = i * limbs; k < (i + 1) * limbs; k++) if (x[k] !== 0) return false;
  return true;
}

function boundaries(ranges: Ranges): Boundaries {
  const { limbs } = ranges;
  const capacity = 2 * ranges.count;
  const at = new Float64Array(capacity * limbs);
  const after = new Uint8Array(capacity);
  let count = 0;
  for (let i = 0; i < ranges.count; i++) {
    if (!isZeroRow(ranges.starts, i, limbs)) {
      copyRow(ranges.starts, i, at, count, limbs);
      after[count++] = 1;
    }
    if (ranges.ends[i * limbs] !== LIMB) {
      copyRow(ranges.ends, i, at, count, limbs);
      after[count++] = 0;
    }
  }
  return { limbs, count, at: at.subarray(0, count * limbs), after: after.subarray(0, count) };
}

/** Puts row `at` of IPv6 limbs into `groups`. */
function limbsToGroups(rows: Float64Array, at = 0): void {
  for (let k = 0, base = at * 4; k < 4; k++) {
    groups[2 * k] = rows[base + k]! >>> 16;
    groups[2 * k + 1] = rows[base + k]! & 0xffff;
  }
}

/** The prefix of `length` bits at row `at` of networks kept as limbs (see above), as formatPrefix writes it. */
export function formatLimbs(family: Family, rows: Float64Array, at: number, length: number): string {
  if (family === 4) return `${formatIPv4(rows[at]!)}/${length}`;
  limbsToGroups(rows, at);
  return `${formatGroups()}/${length}`;
}

function limbsToBigint(row: Float64Array): bigint {
  return (BigInt(row[0]!) << 96n) | (BigInt(row[1]!) << 64n) | (BigInt(row[2]!) << 32n) | BigInt(row[3]!);
}

const EMPTY: Record<Family, Ranges> = {
  4: { limbs: V4_LIMBS, count: 0, starts: new Float64Array(0), ends: new Float64Array(0) },
  6: { limbs: V6_LIMBS, count: 0, starts: new Float64Array(0), ends: new Float64Array(0) },
};

/** Doubles as little-endian bytes on every machine, so that a hash of them is the same everywhere. */
function littleEndian(values: Float64Array): Uint8Array {
  const bytes = Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  return endianness() === "LE" ? bytes : Buffer.from(bytes).swap64();
}

/**
 * A set of IPv4 and IPv6 addresses, kept as maximal ranges per family. Every set
 * operation of this module goes through it; large prefix lists use it directly
 * so that no per-prefix object is ever built for them.
 */
export class AddressSet {
  /** From maximal ranges; build sets with `of`, `whole` or an AddressSetBuilder. */
  constructor(
    private readonly v4: Ranges,
    private readonly v6: Ranges,
  ) {}

  static readonly EMPTY = new AddressSet(EMPTY[4], EMPTY[6]);

  /** Feeds the set's maximal ranges into a hash: equal sets hash alike, however their prefixes were written. */
  updateHash(hash: Hash): void {
    hash.update(littleEndian(this.v4.starts)).update(littleEndian(this.v4.ends));
    hash.update("|").update(littleEndian(this.v6.starts)).update("/").update(littleEndian(this.v6.ends)).update("|");
  }

  static whole(family: Family): AddressSet {
    const ends = family === 4 ? Float64Array.of(LIMB) : Float64Array.of(LIMB, 0, 0, 0);
    const whole: Ranges = { limbs: ends.length, count: 1, starts: new Float64Array(ends.length), ends };
    return family === 4 ? new AddressSet(whole, EMPTY[6]) : new AddressSet(EMPTY[4], whole);
  }

  /** The addresses first to last (both included) of one family. */
  static ofRange(family: Family, first: bigint, last: bigint): AddressSet {
    const bits = BigInt(BITS[family]);
    if (first < 0n || first > last || last >> bits !== 0n) throw new RangeError(`not a range of IPv${family} addresses: ${first} to ${last}`);
    const limbs = family === 4 ? V4_LIMBS : V6_LIMBS;
    // The top limb may hold the end of the space (2^32), so it is not masked.
    const row = (value: bigint) => Float64Array.from({ length: limbs }, (_, k) => Number(k === 0 ? value >> BigInt(32 * (limbs - 1)) : (value >> BigInt(32 * (limbs - 1 - k))) & 0xffffffffn));
    const range: Ranges = { limbs, count: 1, starts: row(first), ends: row(last + 1n) };
    return family === 4 ? new AddressSet(range, EMPTY[6]) : new AddressSet(EMPTY[4], range);
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
    return this.v4.count === 0 && this.v6.count === 0;
  }

  /** The addresses of one family only. */
  only(family: Family): AddressSet {
    return family === 4 ? new AddressSet(this.v4, EMPTY[6]) : new AddressSet(EMPTY[4], this.v6);
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
    const ranges = family === 4 ? this.v4 : this.v6;
    const { limbs } = ranges;
    let total = 0;
    for (let i = 0; i < ranges.count && total < atMost; i++) total += countBlocks(ranges.starts, i, ranges.ends, i, limbs);
    return total;
  }

  /** Where membership in the set changes across the family's space (see Boundaries). */
  boundaries(family: Family): Boundaries {
    return boundaries(family === 4 ? this.v4 : this.v6);
  }

  /**
   * The family's minimal cover cut into consecutive sets: the first with `first` prefixes, the
   * others with `size` each, the last with what is left. Their covers, in order, are this cover.
   */
  chunks(family: Family, size: number, first = size): AddressSet[] {
    if (!(Number.isInteger(size) && size > 0 && Number.isInteger(first) && first > 0)) throw new RangeError(`chunk sizes must be positive integers, not ${first} and ${size}`);
    return splitCover(family === 4 ? this.v4 : this.v6, first, size).map((ranges) => (family === 4 ? new AddressSet(ranges, EMPTY[6]) : new AddressSet(EMPTY[4], ranges)));
  }

  /** The unique minimal CIDR cover: IPv4 first, then IPv6, each in address order. */
  prefixes(): Prefix[] {
    const prefixes: Prefix[] = [];
    forEachBlock(this.v4, (network, length) => prefixes.push({ family: 4, network: BigInt(network[0]!), length }));
    forEachBlock(this.v6, (network, length) => prefixes.push({ family: 6, network: limbsToBigint(network), length }));
    return prefixes;
  }

  /**
   * The same cover as prefixes(), already formatted as formatPrefix would:
   * large sets go straight to text without a bigint per prefix.
   */
  cidrs(): string[] {
    const texts: string[] = [];
    this.forEachCidr((text) => texts.push(text));
    return texts;
  }

  /** cidrs() one at a time, so that a long cover need not exist as strings all at once. */
  forEachCidr(visit: (text: string, index: number) => void): void {
    let index = 0;
    forEachBlock(this.v4, (network, length) => visit(`${formatIPv4(network[0]!)}/${length}`, index++));
    forEachBlock(this.v6, (network, length) => {
      limbsToGroups(network);
      visit(`${formatGroups()}/${length}`, index++);
    });
  }
}

/**
 * The order of `count` IPv6 networks (8 groups each) by value. A typed-array sort
 * without a callback is native code, fast from its first call, but orders doubles:
 * each network's key is its leading bits followed by its index, as many leading
 * bits as leave room for the index in 53. Networks that share those bits (rare
 * outside one allocation) are then ordered among themselves by all 128.
 */
function sortIPv6(networks: Uint16Array, count: number): Uint32Array {
  const indexScale = 2 ** Math.max(1, Math.ceil(Math.log2(count + 1)));
  const topScale = Math.min(2 ** 48, 2 ** 53 / indexScale); // distinct values of the leading bits kept
  const drop = 2 ** 48 / topScale;
  const keys = new Float64Array(count);
  for (let i = 0, g = 0; i < count; i++, g += 8) {
    const top48 = networks[g]! * 4294967296 + networks[g + 1]! * 65536 + networks[g + 2]!;
    keys[i] = Math.floor(top48 / drop) * indexScale + i;
  }
  keys.sort();
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = keys[i]! % indexScale;
  const byValue = (a: number, b: number) => {
    for (let k = 0; k < 8; k++) {
      const difference = networks[8 * a + k]! - networks[8 * b + k]!;
      if (difference !== 0) return difference;
    }
    return 0;
  };
  for (let runStart = 0; runStart < count; ) {
    const leading = Math.floor(keys[runStart]! / indexScale);
    let runEnd = runStart + 1;
    while (runEnd < count && Math.floor(keys[runEnd]! / indexScale) === leading) runEnd++;
    if (runEnd - runStart > 1) order.subarray(runStart, runEnd).sort(byValue);
    runStart = runEnd;
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
    if (isFailure(scanned)) return scanned.hint === undefined ? { message: scanned.message } : { message: scanned.message, hint: scanned.hint };
    if (scanned >= 0) this.addIPv4(scanned);
    else this.addIPv6(ipv6ScannedLength(scanned)); // scanPrefix left the network in `groups`
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
    const at = 8 * this.v6Count;
    for (let i = 0; i < 8; i++) this.v6Groups[at + i] = groups[i]!; // a loop: set() across array types costs a runtime call
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
    const v6Networks = new Float64Array(4 * order.length);
    const v6Lengths = new Uint8Array(order.length);
    const v6Groups = this.v6Groups;
    for (let i = 0; i < order.length; i++) {
      const g = 8 * order[i]!;
      for (let k = 0; k < 4; k++) v6Networks[4 * i + k] = v6Groups[g + 2 * k]! * 65536 + v6Groups[g + 2 * k + 1]!;
      v6Lengths[i] = this.v6Lengths[order[i]!]!;
    }
    const set = new AddressSet(toRanges(V4_LIMBS, v4Networks, v4Lengths), toRanges(V6_LIMBS, v6Networks, v6Lengths));
    this.v4Keys = new Float64Array(1024);
    this.v4Count = 0;
    this.v6Groups = new Uint16Array(8 * 1024);
    this.v6Lengths = new Uint8Array(1024);
    this.v6Count = 0;
    return set;
  }
}
