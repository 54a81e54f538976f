// Aggregation against trusted reference tools on a fixed synthetic data set:
// FireHOL's iprange (C; IPv4 only) and Perl's Net::CIDR::Lite (IPv6), the
// aggregators issue 6 names. The data comes from the benchmark's seeded
// generator, so this test and `npm run bench` check the same shapes of input.
// Skipped, with the reason, where a tool is not installed (CI installs both).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { countryList, ipv4List, ipv6List } from "../bench/synthetic.mjs";
import { parsePrefixList } from "../src/prefix-list.js";

const has = (command: string, args: string[], input = "") => spawnSync(command, args, { input, stdio: ["pipe", "ignore", "ignore"] }).status === 0;
// iprange exits 1 after --version; aggregating one address is the reliable probe.
const haveIprange = has("iprange", ["--optimize"], "192.0.2.1\n");
const havePerlLite = has("perl", ["-MNet::CIDR::Lite", "-e", "1"]);

/** Net::CIDR::Lite's merged list; one object per family, as the module requires. */
const PERL_AGGREGATE = 'my $c = Net::CIDR::Lite->new; while (<>) { s/#.*//; s/^\\s+|\\s+$//g; $c->add_any($_) if length } print "$_\\n" for $c->list';

const dir = mkdtempSync(join(tmpdir(), "prefix-reference-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const lines = (text: string) => text.split("\n").filter((l) => l !== "");
/** iprange prints a /32 as a bare address. */
const withLength = (cidr: string) => (cidr.includes("/") ? cidr : `${cidr}/32`);

/**
 * Net::CIDR::Lite writes "::" even for a single zero group (2001:db8::1:2:3:4:5), which
 * RFC 5952 forbids; WHATWG URL's serializer, not the code under test, gives the RFC 5952 text.
 */
function rfc5952(cidr: string): string {
  const [address, length] = cidr.split("/");
  return `${new URL(`http://[${address}]/`).hostname.slice(1, -1)}/${length}`;
}

function ours(list: string[]): { v4: string[]; v6: string[] } {
  const parsed = parsePrefixList(list.join("\n"));
  assert.is(parsed.problemCount, 0, JSON.stringify(parsed.problems));
  const cidrs = parsed.set.cidrs();
  return { v4: cidrs.filter((c) => !c.includes(":")), v6: cidrs.filter((c) => c.includes(":")) };
}

function iprange(list: string[]): string[] {
  const file = join(dir, "v4.txt");
  writeFileSync(file, list.filter((l) => !l.includes(":")).join("\n") + "\n");
  return lines(execFileSync("iprange", ["--optimize", file], { encoding: "utf8" })).map(withLength);
}

function netCidrLite(list: string[]): string[] {
  const file = join(dir, "v6.txt");
  writeFileSync(file, list.filter((l) => l.includes(":")).join("\n") + "\n");
  return lines(execFileSync("perl", ["-MNet::CIDR::Lite", "-e", PERL_AGGREGATE, file], { encoding: "utf8", maxBuffer: 1 << 28 })).map(rfc5952);
}

const datasets: [string, string[]][] = [
  ["50,000 random IPv4 prefixes", ipv4List(50_000, 4)],
  // Enough for /128s with a single zero group, which Net::CIDR::Lite spells differently.
  ["100,000 random IPv6 prefixes", ipv6List(100_000, 6)],
  ["a country-shaped list (8,000 IPv4 + 2,000 IPv6)", countryList(1)],
];

for (const [name, list] of datasets) {
  const hasV4 = list.some((l) => /^\d/.test(l));
  const hasV6 = list.some((l) => l.includes(":"));
  if (hasV4) {
    const title = `IPv4 of ${name}: identical to iprange --optimize`;
    if (!haveIprange) test.skip(`${title} (skipped: iprange is not installed; Debian package iprange)`);
    else test(title, () => assert.equal(ours(list).v4, iprange(list)));
  }
  if (hasV6) {
    const title = `IPv6 of ${name}: identical to Net::CIDR::Lite`;
    if (!havePerlLite) test.skip(`${title} (skipped: Net::CIDR::Lite is not installed; Debian package libnet-cidr-lite-perl)`);
    else test(title, () => assert.equal(ours(list).v6, netCidrLite(list)));
  }
}

test.run();
