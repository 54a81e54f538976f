// `gen-networkd explain` run as a user would: verdicts for a host given as files
// (a LAN, a global IPv6 LAN, tailscale's table 52), --json fields, the assumed
// host, the representative table, and one-line errors.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const cli = join(root, "dist/cli.js");
const seed = join(root, "examples/seed.json");

// What `ip -4 -j rule; ip -6 -j rule` and `ip -j route show table all` print on a host with tailscale.
const RULES = `[{"priority":0,"src":"all","table":"local"},{"priority":5270,"src":"all","table":"52"},{"priority":32766,"src":"all","table":"main"},{"priority":32767,"src":"all","table":"default"}]
[{"priority":0,"src":"all","table":"local"},{"priority":5270,"src":"all","table":"52"},{"priority":32766,"src":"all","table":"main"}]
`;
const ROUTES = JSON.stringify([
  { dst: "default", gateway: "192.168.1.1", dev: "eth0", flags: [] },
  { dst: "192.168.1.0/24", dev: "eth0", protocol: "kernel", scope: "link", prefsrc: "192.168.1.2", flags: [] },
  { dst: "100.100.100.100", dev: "tailscale0", table: "52", flags: [] },
  { type: "local", dst: "127.0.0.0/8", dev: "lo", table: "local", protocol: "kernel", scope: "host", prefsrc: "127.0.0.1", flags: [] },
  { type: "local", dst: "192.168.1.2", dev: "eth0", table: "local", protocol: "kernel", scope: "host", prefsrc: "192.168.1.2", flags: [] },
  { dst: "2001:db8:50::/64", dev: "eth0", protocol: "kernel", metric: 256, flags: [], pref: "medium" },
  { dst: "default", gateway: "2001:db8:50::1", dev: "eth0", metric: 1024, flags: [], pref: "medium" },
  { type: "local", dst: "::1", dev: "lo", table: "local", protocol: "kernel", metric: 0, flags: [], pref: "medium" },
]);

let work = "";
test.before.each(() => {
  assert.ok(existsSync(cli), "dist/cli.js is missing: run `npm run build` (npm test does)");
  work = mkdtempSync(join(tmpdir(), "gen-networkd-explain-"));
  writeFileSync(join(work, "rules.json"), RULES);
  writeFileSync(join(work, "routes.json"), ROUTES);
});
test.after.each(() => rmSync(work, { recursive: true, force: true }));

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, [cli, ...args], { cwd: work, encoding: "utf8", env: { ...process.env, ...env } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

interface Row {
  label?: string;
  dst: string;
  proto: string;
  dport: number;
  uid: number;
  verdict: string;
  interface: string | null;
  table: string | null;
  rule_priority: number | null;
  route: string | null;
  steps: { priority: number; rule: string; result: string }[];
  assumes: string[];
}

function explainJson(args: string[]): Row[] {
  const { code, stdout, stderr } = run(["explain", seed, "--json", ...args]);
  assert.is(code, 0, stderr);
  return JSON.parse(stdout) as Row[];
}

test("--json with the host's tables from files: tunnel, connected LANs direct, tailscale, blocked IPv6", () => {
  const rows = explainJson(["--rules", "rules.json", "--routes", "routes.json", "tcp:203.0.113.9:443", "uid=1000", "tcp:[2001:db8:50::9]:22", "udp:203.0.113.9:53", "tcp:100.100.100.100:80", "tcp:[2001:db8:99::1]:443", "tcp:192.168.1.7:8080"]);
  const brief = rows.map((r) => [r.proto, r.dst, r.dport, r.uid, r.verdict, r.interface, r.table, r.rule_priority]);
  assert.equal(brief, [
    ["tcp", "203.0.113.9", 443, 1000, "tunnel", "wg0", "10086", 10086],
    ["tcp", "2001:db8:50::9", 22, 0, "direct", "eth0", "main", 10085],
    ["udp", "203.0.113.9", 53, 0, "direct", "eth0", "main", 32766],
    ["tcp", "100.100.100.100", 80, 0, "direct", "tailscale0", "52", 5270],
    ["tcp", "2001:db8:99::1", 443, 0, "unreachable", null, "10086", 10089],
    ["tcp", "192.168.1.7", 8080, 0, "direct", "eth0", "main", 10085],
  ]);
  for (const row of rows) assert.equal(row.assumes, [], "files describe the host: nothing is assumed");
  assert.equal(rows[0]!.steps.map((s) => [s.priority, s.result]), [
    [0, "no route in local: next rule"],
    [5270, "no route in 52: next rule"],
    [10085, "default via 192.168.1.1 dev eth0 suppressed (/0): next rule"],
    [10086, "default dev wg0"],
  ]);
});

test("a host rule on our table at a priority the plan does not have is simulated, with a note", () => {
  writeFileSync(join(work, "rules.json"), RULES.replace(`{"priority":5270,"src":"all","table":"52"},`, `{"priority":5270,"src":"all","table":"52"},{"priority":5000,"src":"all","ipproto":"tcp","table":"10086"},`));
  const { code, stdout, stderr } = run(["explain", seed, "--json", "--rules", "rules.json", "--routes", "routes.json", "tcp:203.0.113.9:443"]);
  assert.is(code, 0, stderr);
  assert.is(stderr, "gen-networkd: explain: note: the host has a rule the plan does not, and it is simulated: priority 5000 from all ipproto tcp lookup 10086 (see gen-networkd doctor)\n".replace("gen-networkd: ", ""));
  const [row] = JSON.parse(stdout) as Row[];
  assert.equal([row!.verdict, row!.interface, row!.rule_priority], ["tunnel", "wg0", 5000], "decided by the stray rule, before tailscale's and ours");
});

test("without host state (--offline) the verdicts that consulted main say so", () => {
  const rows = explainJson(["--offline", "tcp:203.0.113.9:443", "tcp:10.253.0.2:22"]);
  assert.is(rows[0]!.verdict, "tunnel");
  assert.match(rows[0]!.assumes.join(), /main holds only a default route/);
  assert.equal([rows[1]!.verdict, rows[1]!.interface, rows[1]!.assumes], ["direct", "lo", []]);
});

test("no flows: a row per representative destination and protocol", () => {
  const rows = explainJson(["--offline"]);
  const labels = new Set(rows.map((r) => r.label));
  for (const label of ["public IPv4", "public IPv6", "@rfc1918 10.0.0.0/8", "@broadcast 255.255.255.255/32", "tunnel endpoint", "tunnel address 10.253.0.2/32"]) {
    assert.ok(labels.has(label), `missing ${label} in ${[...labels].join(", ")}`);
  }
  assert.equal([...new Set(rows.map((r) => r.proto))], ["tcp", "udp"]);
  const publicTcp = rows.find((r) => r.label === "public IPv4" && r.proto === "tcp")!;
  assert.is(publicTcp.verdict, "tunnel");
});

test("a prefix list is represented by the first and last prefix of its cover, per family, and they go direct", () => {
  const { code, stdout, stderr } = run(["explain", join(root, "examples/country/country.toml"), "--offline", "--json"]);
  assert.is(code, 0, stderr);
  const rows = (JSON.parse(stdout) as Row[]).filter((r) => r.label?.startsWith("split.exclude_files ") && r.proto === "tcp");
  assert.equal(
    rows.map((r) => r.label),
    [
      "split.exclude_files 41.64.0.0/12 (first of 13 IPv4 prefixes)",
      "split.exclude_files 197.232.0.0/14 (last of 13 IPv4 prefixes)",
      "split.exclude_files 2a0b:5c40::/28 (first of 4 IPv6 prefixes)",
      "split.exclude_files 2c0f:fe08::/29 (last of 4 IPv6 prefixes)",
    ],
  );
  for (const row of rows) assert.is(row.verdict, "direct", `${row.label}: ${row.verdict}`);
});

test("human output: one line per flow with its verdict, the matching rules under it; no colors off a terminal", () => {
  const { code, stdout } = run(["explain", seed, "--rules", "rules.json", "--routes", "routes.json", "tcp:203.0.113.9:443", "udp:[2001:db8::1]:53"], { FORCE_COLOR: "1" });
  assert.is(code, 0);
  assert.not.match(stdout, /\x1b\[/);
  const lines = stdout.trimEnd().split("\n");
  assert.match(lines[0]!, /^host: rules\.json and routes\.json$/);
  assert.match(lines[1]!, /^tcp 203\.0\.113\.9:443 {2}→ {2}tunnel wg0$/);
  assert.match(stdout, /\n {2}10086 +from 0\.0\.0\.0\/32 ipproto tcp lookup 10086 +default dev wg0\n/);
  assert.match(stdout, /\nudp \[2001:db8::1\]:53 {2}→ {2}direct \(main table, eth0\)\n/);
});

test("from=: the host's reply to a connection that came in on its uplink is direct (split.inbound), a new connection is captured", () => {
  const { code, stdout } = run(["explain", seed, "--rules", "rules.json", "--routes", "routes.json", "--json", "tcp:203.0.113.200:51234", "sport=22", "from=192.0.2.2", "tcp:203.0.113.200:443"]);
  assert.is(code, 0);
  const [reply, connect] = JSON.parse(stdout) as { verdict: string; rule_priority: number }[];
  assert.equal([reply!.verdict, reply!.rule_priority], ["direct", 10088]);
  assert.equal([connect!.verdict, connect!.rule_priority], ["tunnel", 10086]);
});

test("colors on a terminal, never with NO_COLOR (run under script(1) for a terminal)", () => {
  const onTerminal = (env: string) => spawnSync("script", ["-qec", `${env} ${process.execPath} ${cli} explain ${seed} --offline`, "/dev/null"], { cwd: work, encoding: "utf8", env: { ...process.env, NO_COLOR: undefined } });
  const colored = onTerminal("");
  assert.is(colored.status, 0, colored.stderr);
  assert.match(colored.stdout, /\x1b\[32mtunnel wg0 \*\x1b\[39m/);
  const plain = onTerminal("NO_COLOR=1");
  assert.is(plain.status, 0, plain.stderr);
  assert.match(plain.stdout, /tunnel wg0 \*/);
  assert.not.match(plain.stdout, /\x1b\[/);
});

test("the representative table is aligned and marks assumed verdicts", () => {
  const { code, stdout } = run(["explain", seed, "--offline"]);
  assert.is(code, 0);
  const lines = stdout.trimEnd().split("\n");
  assert.match(lines[0]!, /verdicts marked \* assume main holds only a default route/);
  assert.match(lines[1]!, /^destination +what +tcp +udp$/);
  const column = lines[1]!.indexOf("tcp");
  for (const line of lines.slice(2)) assert.ok(/^\S/.test(line.slice(column)) && / $/.test(line.slice(0, column)), `misaligned: ${line}`);
  assert.match(stdout, /\n203\.0\.113\.9 +public IPv4 +tunnel wg0 \* +direct \(main table\) \*\n/);
});

test("errors: one line with the place and a hint; usage errors exit 2, bad host files 1", () => {
  const badFlow = run(["explain", seed, "--offline", "tcp:203.0.113.9:70000"]);
  assert.is(badFlow.code, 2);
  assert.match(badFlow.stderr, /^gen-networkd: explain: flow "tcp:203\.0\.113\.9:70000": port "70000" is not 0\.\.65535; write flows like .*\n$/);
  const half = run(["explain", seed, "--rules", "rules.json"]);
  assert.is(half.code, 2);
  assert.match(half.stderr, /^gen-networkd: explain: --rules and --routes go together/);
  const missing = run(["explain", seed, "--rules", "nope.json", "--routes", "routes.json", "203.0.113.9"]);
  assert.is(missing.code, 1);
  assert.is(missing.stderr, "gen-networkd: nope.json: cannot read it (ENOENT); make it on the host with: { ip -4 -N -j rule; ip -6 -N -j rule; } > nope.json\n");
  writeFileSync(join(work, "rules.json"), "oops");
  const garbled = run(["explain", seed, "--rules", "rules.json", "--routes", "routes.json", "203.0.113.9"]);
  assert.is(garbled.code, 1);
  assert.match(garbled.stderr, /^gen-networkd: rules\.json: expected the JSON arrays that `ip -j` prints\n$/);
});

test("item 18: mark=, sport=, from= and iif= are kept in the printed header and in --json", () => {
  const [row] = explainJson(["--offline", "tcp:203.0.113.9:443", "mark=0x10", "sport=5000", "from=10.253.0.2"]) as (Row & { mark: number; sport: number; src: string | null; iif: string })[];
  assert.equal([row!.mark, row!.sport, row!.src, row!.iif], [16, 5000, "10.253.0.2", "lo"]);
  const [forwarded] = explainJson(["--offline", "tcp:203.0.113.9:443", "iif=docker0"]) as (Row & { iif: string; forwarded: boolean })[];
  assert.equal([forwarded!.iif, forwarded!.forwarded], ["docker0", true]);
  const human = run(["explain", seed, "--offline", "tcp:203.0.113.9:443", "mark=0x10", "sport=5000", "from=10.253.0.2", "uid=1000"]);
  assert.is(human.code, 0, human.stderr);
  assert.match(human.stdout, /^tcp 203\.0\.113\.9:443 from=10\.253\.0\.2 sport=5000 uid=1000 mark=0x10  →  /m);
  const iif = run(["explain", seed, "--offline", "tcp:203.0.113.9:443", "iif=docker0"]);
  assert.match(iif.stdout, /^tcp 203\.0\.113\.9:443 forwarded iif=docker0  →  /m);
});

test("item 18: an IPv6 address after a protocol needs brackets, so a port is never read as its last group", () => {
  const ambiguous = run(["explain", seed, "--offline", "tcp:2001:db8::1:443"]);
  assert.is(ambiguous.code, 2);
  assert.is(ambiguous.stderr.split("\n").length, 2, ambiguous.stderr);
  assert.match(ambiguous.stderr, /^gen-networkd: explain: flow "tcp:2001:db8::1:443": an IPv6 address after a protocol goes in brackets, as in URLs: tcp:\[2001:db8::1:443\] for the address, tcp:\[2001:db8::1\]:443 for port 443/);
  const [bracketed] = explainJson(["--offline", "tcp:[2001:db8::1]:443"]);
  assert.equal([bracketed!.dst, bracketed!.dport], ["2001:db8::1", 443]);
  const [bare] = explainJson(["--offline", "2001:db8::1:443"]);
  assert.equal([bare!.dst, bare!.dport], ["2001:db8::1:443", 0]);
});

test("item 18: --rules without --routes names both commands with -N", () => {
  const half = run(["explain", seed, "--rules", "rules.json"]);
  assert.is(half.code, 2);
  assert.is(half.stderr, "gen-networkd: explain: --rules and --routes go together: { ip -4 -N -j rule; ip -6 -N -j rule; } > rules.json and ip -N -j route show table all > routes.json\n");
});

test("--help shows an example for explain and schema", () => {
  for (const command of ["explain", "schema"]) {
    const { code, stdout } = run([command, "--help"]);
    assert.is(code, 0);
    assert.match(stdout, /Examples?:\n {2}gen-networkd /, command);
  }
});

test("dns:NAME: which resolvers resolved asks, and the path of its queries (UDP and TCP port 53 through the tunnel, resolved's own user)", () => {
  const spec = join(root, "examples/split-dns.toml");
  const result = run(["explain", spec, "dns:wiki.corp.example", "dns:www.example.com", "dns:wiki", "--offline", "--json"]);
  assert.is(result.code, 0, result.stderr);
  const lookups = JSON.parse(result.stdout);
  assert.equal(lookups.map((l: { name: string; goes_to: string; matched_domain: string | null }) => [l.name, l.goes_to, l.matched_domain]), [
    ["wiki.corp.example", "tunnel", "corp.example"],
    ["www.example.com", "other-links", null],
    ["wiki.corp.example", "tunnel", "corp.example"],
  ]);
  assert.equal(lookups[0].queries.map((q: { proto: string; dst: string; dport: number; verdict: string; interface: string }) => `${q.proto} ${q.dst}:${q.dport} ${q.verdict} ${q.interface}`), [
    "udp 10.90.0.53:53 tunnel wgcorp",
    "tcp 10.90.0.53:53 tunnel wgcorp",
    "udp fd00:90::53:53 tunnel wgcorp",
    "tcp fd00:90::53:53 tunnel wgcorp",
  ]);
  assert.equal(lookups[1].queries, []);
  assert.ok(lookups[0].notes.some((n: string) => n.includes("as its own user")), "the resolved user is named");
  const everything = run(["explain", join(root, "examples/dns.toml"), "dns:www.example.com", "--offline"]);
  assert.match(everything.stdout, /lookup www\.example\.com {2}→ {2}10\.253\.0\.1 \(tunnel\.dns, domain ~\.\)/);
  assert.match(everything.stdout, /kill switch: the resolvers are also resolved's global servers/);
  assert.match(everything.stdout, /query udp 10\.253\.0\.1:53 {2}→ {2}tunnel wg0/);
  const bad = run(["explain", spec, "dns:not a name!", "--offline"]);
  assert.is(bad.code, 2);
  assert.match(bad.stderr, /is not a name to look up/);
});

test.run();
