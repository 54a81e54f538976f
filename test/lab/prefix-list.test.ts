// Lab: a 2,000-prefix exclusion list (split.exclude_files) applied by the real
// systemd-networkd. apply() waits until the kernel holds exactly the rules and
// routes the generated files ask for (every merged throw); then 200 probes per
// family are asked of the kernel with `ip route get … ipproto tcp` and compared
// with an oracle that knows only the raw list (unmerged), @local and the lab's
// LAN: inside → direct, outside → tunnel. Probes sit on and just beside list
// prefixes' edges and at random, so a throw that is one block too wide or too
// narrow shows.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { ipv4List, ipv6List, random } from "../../bench/synthetic.mjs";
import { namedSet } from "../../src/named-sets.js";
import { containsAddress, formatAddress, type Family } from "../../src/prefix.js";
import { prefixOf } from "../prefix-of.js";
import { SplitCase } from "./case.js";
import { labSuite } from "./harness.js";
import { ADDR } from "./lab.js";

const LIST: string[] = [...ipv4List(1500, 2026), ...ipv6List(500, 2026)];
const PROBES_PER_FAMILY = 200;

const listed = LIST.map(prefixOf);
/** What stays direct: the list as written, @local, and the LAN main knows (direct_connected). */
const direct = [...listed, ...namedSet("@local")!.map(prefixOf), prefixOf(ADDR.lanPrefix4), prefixOf(ADDR.lanPrefix6)];
const expected = (family: Family, address: bigint) => (direct.some((p) => containsAddress(p, family, address)) ? "direct" : "tunnel");

/** Seeded probes: edges of list prefixes (first, last, one before, one after), inside them, and anywhere in public space. */
function probes(family: Family): bigint[] {
  const rand = random(family);
  const bits = family === 4 ? 32n : 128n;
  const ofFamily = listed.filter((p) => p.family === family);
  const randomBits = (n: bigint) => {
    let value = 0n;
    for (let i = 0n; i < n; i += 16n) value = (value << 16n) | BigInt(Math.floor(rand() * 65536));
    return BigInt.asUintN(Number(n), value);
  };
  // IPv4 1.0.0.0-223.255.255.255; IPv6 2000::/3, where the list lives.
  const anywhere = () => (family === 4 ? BigInt(0x01000000 + Math.floor(rand() * 223 * 2 ** 24)) : (1n << 125n) | randomBits(125n));
  return Array.from({ length: PROBES_PER_FAMILY }, () => {
    if (rand() < 0.25) return anywhere();
    const p = ofFamily[Math.floor(rand() * ofFamily.length)]!;
    const size = 1n << (bits - BigInt(p.length));
    const last = p.network + size - 1n;
    return [p.network, last, p.network - 1n, last + 1n, p.network + randomBits(bits - BigInt(p.length))][Math.floor(rand() * 5)]!;
  });
}

const lab = labSuite(
  "lab: a 2,000-prefix exclusion list",
  async () => {
    const c = await SplitCase.create("plist");
    try {
      const listPath = join(c.lab.work, "excluded.txt");
      await writeFile(listPath, LIST.join("\n") + "\n");
      await c.generate({
        version: 1,
        tunnel: { interface: "wg0", addresses: ["10.253.0.2/32", "fd00:253::2/128"] },
        split: { protocols: ["tcp"], exclude: ["@local"], exclude_files: [listPath] },
      });
      await c.apply();
      return c;
    } catch (error) {
      await c.destroy();
      throw error;
    }
  },
  (c) => c.destroy(),
);

for (const family of [4, 6] as const) {
  lab.test(`IPv${family}: ${PROBES_PER_FAMILY} probes, kernel (ip route get ipproto tcp) = oracle from the raw list`, async (c) => {
    const addresses = probes(family);
    const decisions = await c.lab.routeGetMany(addresses.map((a) => ({ dst: formatAddress(family, a), ipproto: "tcp", dport: 443, tunnel: "wg0" })));
    const wrong = addresses
      .map((a, i) => ({ dst: formatAddress(family, a), want: expected(family, a), got: decisions[i]!.verdict, dev: decisions[i]!.dev }))
      .filter((r) => r.want !== r.got);
    assert.equal(wrong.slice(0, 10), [], `${wrong.length} of ${addresses.length} probes differ (first 10 shown)`);
    // Both answers occur, so neither a missing rule nor a missing default route can pass.
    const verdicts = new Set(addresses.map((a) => expected(family, a)));
    assert.equal([...verdicts].sort(), ["direct", "tunnel"]);
  });
}

lab.run();
