// Real per-country prefix lists, made from the GeoLite2-derived tables that the npm
// package geoip-country (a devDependency only: gen-networkd never downloads or ships one)
// keeps in its data/ directory:
//   geoip-country.dat   10-byte records: first and last IPv4 address (big-endian uint32), 2-letter code
//   geoip-country6.dat  18-byte records: first and last of the upper 64 bits of an IPv6
//                       address (big-endian uint64), 2-letter code
// Each range becomes its minimal CIDR cover (src/prefix.ts). The data is "GeoLite2 data created by
// MaxMind" under MaxMind's GeoLite2 End User License Agreement (the package's LICENSE and EULA),
// which does not let this project redistribute it: lists are made when a bench or test needs
// them, never committed.
//
//   node --import tsx bench/geoip-lists.ts DIR [CC ...]   # writes DIR/CC.txt (every country if none named)

import { readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { AddressSet } from "../src/prefix.js";

const require = createRequire(import.meta.url);
const packageDir = dirname(require.resolve("geoip-country/package.json"));
const LOW_64 = (1n << 64n) - 1n;

export interface CountryList {
  readonly code: string;
  readonly ipv4: number;
  readonly ipv6: number;
  /** The list file's text: a comment header naming the source, then one prefix per line. */
  readonly text: string;
}

/** geoip-country's version, which dates its data. */
export const geoipVersion = (): string => (JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as { version: string }).version;

/** Every range of the tables, per country code, as CIDR texts per family. */
function prefixesByCountry(wanted: ReadonlySet<string> | undefined): Map<string, { v4: string[]; v6: string[] }> {
  const byCountry = new Map<string, { v4: string[]; v6: string[] }>();
  const entry = (code: string) => {
    let lists = byCountry.get(code);
    if (!lists) byCountry.set(code, (lists = { v4: [], v6: [] }));
    return lists;
  };
  const v4 = readFileSync(join(packageDir, "data", "geoip-country.dat"));
  for (let at = 0; at + 10 <= v4.length; at += 10) {
    const code = v4.toString("latin1", at + 8, at + 10);
    if (wanted && !wanted.has(code)) continue;
    entry(code).v4.push(...AddressSet.ofRange(4, BigInt(v4.readUInt32BE(at)), BigInt(v4.readUInt32BE(at + 4))).cidrs());
  }
  const v6 = readFileSync(join(packageDir, "data", "geoip-country6.dat"));
  for (let at = 0; at + 18 <= v6.length; at += 18) {
    const code = v6.toString("latin1", at + 16, at + 18);
    if (wanted && !wanted.has(code)) continue;
    const first = v6.readBigUInt64BE(at) << 64n;
    const last = (v6.readBigUInt64BE(at + 8) << 64n) | LOW_64;
    entry(code).v6.push(...AddressSet.ofRange(6, first, last).cidrs());
  }
  return byCountry;
}

/** The lists of the named countries (every country when none are named), sorted by code. */
export function countryLists(codes?: readonly string[]): CountryList[] {
  const wanted = codes && codes.length > 0 ? new Set(codes.map((c) => c.toUpperCase())) : undefined;
  const byCountry = prefixesByCountry(wanted);
  for (const code of wanted ?? []) if (!byCountry.has(code)) throw new Error(`geoip-country has no ranges for country code ${code}`);
  const version = geoipVersion();
  return [...byCountry]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([code, { v4, v6 }]) => ({
      code,
      ipv4: v4.length,
      ipv6: v6.length,
      text: [
        `# ${code}: ${v4.length} IPv4 and ${v6.length} IPv6 prefixes, from geoip-country ${version}.`,
        "# This product includes GeoLite2 data created by MaxMind, available from https://www.maxmind.com (GeoLite2 EULA).",
        ...v4,
        ...v6,
        "",
      ].join("\n"),
    }));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, ...codes] = process.argv.slice(2);
  if (!dir) {
    console.error("usage: node --import tsx bench/geoip-lists.ts DIR [CC ...]");
    process.exit(2);
  }
  mkdirSync(dir, { recursive: true });
  for (const list of countryLists(codes)) {
    writeFileSync(join(dir, `${list.code}.txt`), list.text);
    console.log(`${join(dir, `${list.code}.txt`)}: ${list.ipv4} IPv4, ${list.ipv6} IPv6 prefixes`);
  }
}
