// The built CLI, run as a user would, in a temp directory: exit codes, writes,
// idempotence, pruning, ownership, --check, --stdout, key-file warnings.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { listing, ROOT, runCli as run, SEED as seed, useWorkspace } from "./cli-harness.js";

const workspace = useWorkspace(test, "cli");
/** The .netdev/.network files of a directory. */
const units = (dir: string) => listing(dir).filter((name) => /\.(netdev|network)$/.test(name));

test("writes the seed example's two files, mode 0644, and says what it did", () => {
  const { code, stdout, stderr } = run(["spec.toml", "-o", "net"], workspace());
  assert.is(code, 0, stderr);
  assert.equal(listing(join(workspace(), "net")), [".gen-networkd.files", "50-wg0-split.netdev", "50-wg0-split.network", "50-wg0.netdev", "50-wg0.network", "networkd.conf.d"]);
  assert.equal(listing(join(workspace(), "net/networkd.conf.d")), ["50-wg0.conf"]);
  for (const name of units(join(workspace(), "net"))) assert.is(statSync(join(workspace(), "net", name)).mode & 0o777, 0o644);
  assert.match(stdout, /net\/50-wg0\.netdev\s+created/);
  assert.match(stderr, /ipv6: "block" \(default: the tunnel has no IPv6 address/);
});

test("running twice changes nothing on disk (mtime kept)", () => {
  run(["spec.toml", "-o", "net"], workspace());
  const before = units(join(workspace(), "net")).map((n) => statSync(join(workspace(), "net", n)).mtimeMs);
  const { code, stdout } = run(["spec.toml", "-o", "net"], workspace());
  assert.is(code, 0);
  assert.match(stdout, /50-wg0\.network\s+unchanged/);
  assert.equal(units(join(workspace(), "net")).map((n) => statSync(join(workspace(), "net", n)).mtimeMs), before);
});

test("--prefix names the files; the old prefix's files are pruned as stale", () => {
  run(["spec.toml", "-o", "net"], workspace());
  const { code, stdout } = run(["spec.toml", "-o", "net", "--prefix", "60"], workspace());
  assert.is(code, 0);
  assert.equal(units(join(workspace(), "net")), ["60-wg0-split.netdev", "60-wg0-split.network", "60-wg0.netdev", "60-wg0.network"]);
  assert.equal(listing(join(workspace(), "net/networkd.conf.d")), ["60-wg0.conf"]);
  assert.match(stdout, /50-wg0\.netdev\s+removed/);
});

test("a shrinking spec removes its stale files (manage = false drops the .netdev)", () => {
  run(["spec.toml", "-o", "net"], workspace());
  const unmanaged = seed
    .replace("manage = true", "manage = false")
    .replace(/^private_key_file.*$/m, "")
    .replace(/^listen_port.*$/m, "")
    .replace(/\[\[tunnel\.peers\]\][\s\S]*?persistent_keepalive = 25\n/, "");
  writeFileSync(join(workspace(), "spec.toml"), unmanaged);
  const { code, stderr } = run(["spec.toml", "-o", "net"], workspace());
  assert.is(code, 0, stderr);
  assert.equal(units(join(workspace(), "net")), ["50-wg0-split.netdev", "50-wg0-split.network", "50-wg0.network"]);
});

test("a list that shrinks to fewer anchors: the extra anchors' files go as stale, the rest stay ours", () => {
  const list = (n: number) => Array.from({ length: n }, (_, i) => `${1 + (i >> 15)}.${(i >> 7) & 255}.${(i & 127) * 2}.0/24`).join("\n") + "\n";
  writeFileSync(join(workspace(), "spec.toml"), seed.replace("[split]", '[split]\nexclude_files = ["list.txt"]'));
  writeFileSync(join(workspace(), "list.txt"), list(17_000));
  const long = run(["spec.toml", "-o", "net"], workspace());
  assert.is(long.code, 0, long.stderr);
  assert.match(long.stderr, /spread over 3 anchor links \(wg0-split … wg0-split-3\)/);
  const anchors = (n: number) => ["", ...Array.from({ length: n - 1 }, (_, i) => `-${i + 2}`)].flatMap((s) => [`50-wg0-split${s}.netdev`, `50-wg0-split${s}.network`]);
  assert.equal(units(join(workspace(), "net")), [...anchors(3), "50-wg0.netdev", "50-wg0.network"].sort());
  writeFileSync(join(workspace(), "list.txt"), list(9_000));
  const shorter = run(["spec.toml", "-o", "net"], workspace());
  assert.is(shorter.code, 0, shorter.stderr);
  assert.match(shorter.stdout, /50-wg0-split-3\.netdev\s+removed/);
  assert.equal(units(join(workspace(), "net")), [...anchors(2), "50-wg0.netdev", "50-wg0.network"].sort());
});

test("the DNS kill switch's resolved drop-in goes beside networkd.conf.d, and is removed as stale when the spec no longer needs it", () => {
  const spec = join(workspace(), "spec.toml");
  const seedText = readFileSync(spec, "utf8");
  writeFileSync(spec, seedText.replace(/^\[tunnel\]\n/m, '[tunnel]\ndns = ["10.253.0.1"]\n').replace(/^\[split\]\n/m, "[split]\nkillswitch = true\n"));
  const first = run(["spec.toml", "-o", "net"], workspace());
  assert.is(first.code, 0, first.stderr);
  assert.equal(listing(join(workspace(), "net/resolved.conf.d")), ["50-wg0-dns.conf"]);
  assert.match(readFileSync(join(workspace(), "net/resolved.conf.d/50-wg0-dns.conf"), "utf8"), /\[Resolve\]\nDNS=10\.253\.0\.1\nDomains=~\.\n/);
  writeFileSync(spec, seedText.replace(/^\[tunnel\]\n/m, '[tunnel]\ndns = ["10.253.0.1"]\n'));
  const second = run(["spec.toml", "-o", "net"], workspace());
  assert.is(second.code, 0, second.stderr);
  assert.match(second.stdout, /resolved\.conf\.d\/50-wg0-dns\.conf\s+removed/);
  assert.equal(listing(join(workspace(), "net/resolved.conf.d")), []);
});

test("a foreign .network sorting before ours that matches wg0: a warning naming file, link and fix; written anyway, exit 0", () => {
  const net = join(workspace(), "net");
  mkdirSync(net);
  writeFileSync(join(net, "10-wg0.network"), "[Match]\nName=wg0\n\n[Network]\nDHCP=yes\n");
  writeFileSync(join(net, "10-eth0.network"), "[Match]\nName=eth0\n");
  const { code, stderr } = run(["spec.toml", "-o", "net"], workspace());
  assert.is(code, 0, stderr);
  const warnings = stderr.split("\n").filter((line) => line.startsWith("gen-networkd: warning: "));
  assert.equal(warnings, [
    `gen-networkd: warning: ${net}/10-wg0.network sorts before 50-wg0.network and its [Match] Name=wg0 matches wg0: networkd would configure wg0 from it, not from 50-wg0.network; regenerate ours with --prefix 09 (sorting before it), or rename, mask or narrow the [Match] of theirs`,
  ]);
  assert.ok(existsSync(join(net, "50-wg0.network")));
  // Ours sorting first: nothing to warn about.
  const first = run(["spec.toml", "-o", "net", "--prefix", "09"], workspace());
  assert.is(first.code, 0, first.stderr);
  assert.not.match(first.stderr, /warning:/);
});

test("files of another spec (another owner) in the same directory are left alone", () => {
  run(["spec.toml", "-o", "net"], workspace());
  writeFileSync(join(workspace(), "wg1.toml"), seed.replaceAll("wg0", "wg1").replace("table = 10086", "table = 10087").replace("priority = 10086", 'priority = 10076\ninbound = "capture"'));
  assert.is(run(["wg1.toml", "-o", "net"], workspace()).code, 0);
  run(["spec.toml", "-o", "net", "--prefix", "60"], workspace());
  assert.equal(units(join(workspace(), "net")), [
    "50-wg1-split.netdev", "50-wg1-split.network", "50-wg1.netdev", "50-wg1.network",
    "60-wg0-split.netdev", "60-wg0-split.network", "60-wg0.netdev", "60-wg0.network",
  ]);
  assert.equal(listing(join(workspace(), "net/networkd.conf.d")), ["50-wg1.conf", "60-wg0.conf"]);
});

test("a file with our name but without our mark is refused (exit 3) and nothing is written", () => {
  mkdirSync(join(workspace(), "net"));
  writeFileSync(join(workspace(), "net", "50-wg0.network"), "[Match]\nName=wg0\n");
  writeFileSync(join(workspace(), "net", "10-lan.network"), "[Match]\nName=eth0\n");
  const { code, stderr } = run(["spec.toml", "-o", "net"], workspace());
  assert.is(code, 3);
  assert.match(stderr, /net\/50-wg0\.network: exists and was not written by gen-networkd for this tunnel/);
  assert.equal(listing(join(workspace(), "net")), ["10-lan.network", "50-wg0.network"], "nothing else written");
  assert.is(readFileSync(join(workspace(), "net", "50-wg0.network"), "utf8"), "[Match]\nName=wg0\n");

  const forced = run(["spec.toml", "-o", "net", "--force"], workspace());
  assert.is(forced.code, 0, forced.stderr);
  assert.match(readFileSync(join(workspace(), "net", "50-wg0.network"), "utf8"), /^# gen-networkd: owner=wg0/m);
  assert.is(readFileSync(join(workspace(), "net", "10-lan.network"), "utf8"), "[Match]\nName=eth0\n", "never touched");
});

test("--check: 0 when current, 1 with a unified diff when the spec changed; writes nothing", () => {
  run(["spec.toml", "-o", "net"], workspace());
  assert.is(run(["spec.toml", "-o", "net", "--check"], workspace()).code, 0);
  const before = readFileSync(join(workspace(), "net", "50-wg0.network"), "utf8");
  writeFileSync(join(workspace(), "spec.toml"), seed.replace("table = 10086", "table = 10087"));
  const { code, stdout, stderr } = run(["spec.toml", "-o", "net", "--check"], workspace());
  assert.is(code, 1);
  assert.match(stdout, /^-Table=10086$/m);
  assert.match(stdout, /^\+Table=10087$/m);
  assert.match(stderr, /does not hold what spec\.toml generates/);
  assert.is(readFileSync(join(workspace(), "net", "50-wg0.network"), "utf8"), before);
});

test("--check on an empty directory reports every file as drift", () => {
  const { code, stdout } = run(["spec.toml", "-o", "net", "--check"], workspace());
  assert.is(code, 1);
  assert.match(stdout, /\+\+\+ net\/50-wg0\.netdev/);
  assert.not.ok(existsSync(join(workspace(), "net")));
});

test("--stdout prints each file under a header line and writes nothing", () => {
  const { code, stdout } = run(["spec.toml", "-o", "net", "--stdout"], workspace());
  assert.is(code, 0);
  assert.match(stdout, /^==> net\/50-wg0\.netdev <==\n# Generated by gen-networkd from spec\.toml/m);
  assert.match(stdout, /^==> net\/50-wg0\.network <==$/m);
  assert.not.ok(existsSync(join(workspace(), "net")));
});

test("the code cache only saves time: without it, or with one that does not fit, the output is the same", () => {
  assert.ok(existsSync(join(ROOT, "dist/gen-networkd.cjs.cache")), "npm run build writes the code cache");
  const expected = run(["spec.toml", "--stdout"], workspace());
  assert.is(expected.code, 0);
  // A copy of the installed layout (dist/, templates/, package.json) that the test can spoil.
  const copy = join(workspace(), "copy");
  mkdirSync(join(copy, "dist"), { recursive: true });
  for (const file of ["dist/cli.js", "dist/gen-networkd.cjs", "package.json"]) copyFileSync(join(ROOT, file), join(copy, file));
  cpSync(join(ROOT, "templates"), join(copy, "templates"), { recursive: true });
  const runCopy = () => spawnSync(process.execPath, [join(copy, "dist/cli.js"), "spec.toml", "--stdout"], { cwd: workspace(), encoding: "utf8" });
  for (const cache of [undefined, "not a V8 code cache"]) {
    if (cache !== undefined) writeFileSync(join(copy, "dist/gen-networkd.cjs.cache"), cache);
    const result = runCopy();
    assert.is(result.status, 0, result.stderr);
    assert.is(result.stdout, expected.stdout);
    assert.is(result.stderr, expected.stderr);
  }
  // A cache recorded (by a run of `schema`) for another bundle of the same length: its first
  // module comment moved to the end as spaces, so every function after it starts elsewhere.
  const bundle = readFileSync(join(copy, "dist/gen-networkd.cjs"), "utf8");
  const comment = /^\/\/ src\/.*$/m.exec(bundle)!;
  const moved = bundle.slice(0, comment.index) + bundle.slice(comment.index + comment[0].length) + " ".repeat(comment[0].length);
  assert.is(moved.length, bundle.length);
  writeFileSync(join(copy, "dist/gen-networkd.cjs"), moved);
  const recorded = spawnSync(process.execPath, [join(copy, "dist/cli.js"), "schema"], { env: { ...process.env, GEN_NETWORKD_WRITE_CODE_CACHE: "1" }, encoding: "utf8" });
  assert.is(recorded.status, 0, recorded.stderr);
  writeFileSync(join(copy, "dist/gen-networkd.cjs"), bundle);
  const result = runCopy();
  assert.is(result.status, 0, result.stderr);
  assert.is(result.stdout, expected.stdout);
});

test("an invalid spec: exit 1, every problem on its own line with path and hint, nothing written", () => {
  writeFileSync(join(workspace(), "spec.toml"), seed.replace('exclude = ["@local"]', 'exclude = ["@local", "10.0.0.1/8"]').replace("table = 10086", "table = 254"));
  const { code, stderr } = run(["spec.toml", "-o", "net"], workspace());
  assert.is(code, 1);
  assert.equal(stderr.trim().split("\n"), [
    `spec.toml: split.table: 254 is the kernel's "main" table; pick another, e.g. 10086`,
    `spec.toml: split.exclude[1]: "10.0.0.1/8" has host bits set; did you mean "10.0.0.0/8"?`,
  ]);
  assert.not.ok(existsSync(join(workspace(), "net")));
});

test("a valid spec that would capture nothing: exit 1, the spec file and the key named, nothing written", () => {
  writeFileSync(join(workspace(), "spec.toml"), seed.replace("[split]", '[split]\ninclude = ["10.1.0.0/16"]').replace('exclude = ["@local"]', 'exclude = ["@rfc1918"]'));
  const { code, stderr } = run(["spec.toml", "-o", "net"], workspace());
  assert.is(code, 1);
  assert.match(stderr, /^spec\.toml: split\.include: leaves no IPv4 destination to capture/m);
  assert.not.ok(existsSync(join(workspace(), "net")));
});

test("TOML and JSON syntax errors name file, line and column (1-based)", () => {
  writeFileSync(join(workspace(), "bad.toml"), 'version = 1\n[tunnel]\ninterface = "wg0\n');
  const toml = run(["bad.toml"], workspace());
  assert.is(toml.code, 1);
  assert.match(toml.stderr, /^bad\.toml:3:\d+: invalid TOML: /);
  writeFileSync(join(workspace(), "bad.json"), '{\n  "version": 1,\n  "tunnel": {,}\n}\n');
  const json = run(["bad.json"], workspace());
  assert.is(json.code, 1);
  assert.match(json.stderr, /^bad\.json:3:14: invalid JSON: /);
  assert.not.ok(json.stderr.includes("    at "), "no stack trace");
});

test("usage errors exit 2; --help and --version exit 0", () => {
  assert.is(run([], workspace()).code, 2);
  assert.is(run(["spec.toml", "--bogus"], workspace()).code, 2);
  assert.is(run(["spec.toml", "--prefix", "5"], workspace()).code, 2);
  const help = run(["--help"], workspace());
  assert.is(help.code, 0);
  assert.match(help.stdout, /Examples:/);
  assert.match(run(["--version"], workspace()).stdout, /^\d+\.\d+\.\d+/);
});

test("no temporary files are left behind", () => {
  run(["spec.toml", "-o", "net"], workspace());
  writeFileSync(join(workspace(), "spec.toml"), seed.replace("table = 10086", "table = 10087"));
  run(["spec.toml", "-o", "net"], workspace());
  assert.equal(listing(join(workspace(), "net")).filter((n) => n.startsWith(".")), [".gen-networkd.files"], "only the record of what was written");
});

test("key files: warns when world-readable or unreadable by systemd-network, with the fix", () => {
  const keys = join(workspace(), "keys");
  mkdirSync(keys, { mode: 0o755 });
  chmodSync(workspace(), 0o755);
  const key = join(keys, "wg0.key");
  writeFileSync(key, "secret\n", { mode: 0o644 });
  chmodSync(key, 0o644);
  writeFileSync(join(workspace(), "spec.toml"), seed.replace("/etc/systemd/network/wg0.key", key));
  assert.match(run(["spec.toml", "-o", "net"], workspace()).stderr, /world-readable \(mode 0644\).*chmod 0640/);
  chmodSync(key, 0o600);
  const hasNetworkdUser = readFileSync("/etc/passwd", "utf8").includes("\nsystemd-network:");
  const stderr = run(["spec.toml", "-o", "net"], workspace()).stderr;
  if (hasNetworkdUser) assert.match(stderr, /not readable by systemd-network because of .*wg0\.key \(mode 0600\).*install -m 0640 -o root -g systemd-network/);
  const key_ = readFileSync(join(workspace(), "net", "50-wg0.netdev"), "utf8");
  assert.not.ok(key_.includes("secret"), "key material never lands in emitted files");
});

test.run();
