// The built CLI against file-system trouble: concurrent runs on one directory,
// faults of the directory and of the files at our names, closed pipes, stale files.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CLI, listing, runCli as run, SEED as seed, useWorkspace } from "./cli-harness.js";

const workspace = useWorkspace(test, "fs");

/** Runs the CLI without waiting for it: for runs that must overlap. */
function start(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** A second tunnel for the same directory: another interface, table and priority. */
// Before spec.toml's rules, and with split.inbound = "capture": only the spec with the highest
// priority may answer this host's source-bound lookups from main (see the last test).
const otherSpec = (n: number) =>
  seed.replaceAll("wg0", `wg${n}`).replace("table = 10086", `table = ${10086 + n}`).replace("priority = 10086", `priority = ${10086 - 10 * n}\ninbound = "capture"`);

test("concurrent runs on one directory: every run exits 0, one generation per spec at the end", async () => {
  writeFileSync(join(workspace(), "wg1.toml"), otherSpec(1));
  writeFileSync(join(workspace(), "wg2.toml"), otherSpec(2));
  const specs = ["spec.toml", "wg1.toml", "wg2.toml"];
  const runs = await Promise.all(Array.from({ length: 12 }, (_, i) => start([specs[i % 3]!, "-o", "net"], workspace())));
  for (const r of runs) assert.is(r.code, 0, r.stderr);
  assert.equal(listing(join(workspace(), "net")).filter((n) => !n.startsWith(".")).length, 13);
  assert.equal(listing(join(workspace(), "net")).filter((n) => n.endsWith(".tmp")), []);
  for (const spec of specs) assert.is(run([spec, "-o", "net", "--check"], workspace()).code, 0, `${spec} is current`);
});

/** A PID no process has now: one that has just exited. */
const deadPid = () => spawnSync("true").pid!;
const startOf = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
};

test("a lock held by a live run: --wait 0 refuses (exit 3) naming the lock and its holder; nothing written", () => {
  mkdirSync(join(workspace(), "net"));
  writeFileSync(join(workspace(), "net/.gen-networkd.lock"), `pid=${process.pid} start=${startOf(process.pid)} nonce=test\n`);
  const { code, stderr } = run(["spec.toml", "-o", "net", "--wait", "0"], workspace());
  assert.is(code, 3, stderr);
  const errors = stderr.split("\n").filter((line) => line.includes(".gen-networkd.lock"));
  assert.equal(errors.length, 1, stderr);
  assert.match(errors[0]!, /^net\/\.gen-networkd\.lock: net is locked by gen-networkd PID \d+, which is writing it; try again/);
  assert.equal(listing(join(workspace(), "net")), [".gen-networkd.lock"]);
});

test("a run waits for the lock, saying so once, and writes when it is released", async () => {
  mkdirSync(join(workspace(), "net"));
  const lock = join(workspace(), "net/.gen-networkd.lock");
  writeFileSync(lock, `pid=${process.pid} start=${startOf(process.pid)} nonce=test\n`);
  const child = spawn(process.execPath, [CLI, "spec.toml", "-o", "net"], { cwd: workspace() });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => {
    child.on("close", resolve);
    const poll = setInterval(() => {
      if (!stderr.includes("waiting for")) return;
      clearInterval(poll);
      assert.not.ok(existsSync(join(workspace(), "net/50-wg0.network")), "nothing written while locked");
      rmSync(lock); // as its holder does when it is done
    }, 100);
  });
  assert.is(code, 0, stderr);
  assert.is(stderr.match(/waiting for gen-networkd PID/g)?.length, 1, stderr);
  assert.ok(existsSync(join(workspace(), "net/50-wg0.network")));
  assert.not.ok(existsSync(lock), "the run removes its own lock");
});

test("a lock left by a killed run (PID gone, or reused by another process) is taken over", () => {
  mkdirSync(join(workspace(), "net"));
  for (const holder of [`pid=${deadPid()} start=1 nonce=a`, `pid=${process.pid} start=1 nonce=b`]) {
    writeFileSync(join(workspace(), "net/.gen-networkd.lock"), `${holder}\n`);
    const { code, stderr } = run(["spec.toml", "-o", "net", "--wait", "0"], workspace());
    assert.is(code, 0, stderr);
    assert.not.ok(existsSync(join(workspace(), "net/.gen-networkd.lock")));
  }
});

test("temporary files of killed runs are removed; those of a live writer are left alone", () => {
  mkdirSync(join(workspace(), "net"));
  const dead = `.50-wg0.network.${deadPid()}.tmp`;
  const live = `.50-wg0.network.${process.pid}.tmp`;
  writeFileSync(join(workspace(), "net", dead), "");
  writeFileSync(join(workspace(), "net", live), "# gen-networkd: owner=wg0 spec-sha256=" + "0".repeat(64) + "\n");
  const { code, stdout, stderr } = run(["spec.toml", "-o", "net"], workspace());
  assert.is(code, 0, stderr);
  assert.match(stdout, new RegExp(`${dead.replaceAll(".", "\\.")}\\s+removed \\(left by an interrupted run\\)`));
  assert.equal(listing(join(workspace(), "net")).filter((n) => n.endsWith(".tmp")), [live]);
});

test("a closed pipe ends the output quietly: --help | head -1, --stdout | head, --check | head keeps exit 1", () => {
  const sh = (line: string) => spawnSync("bash", ["-o", "pipefail", "-c", line], { cwd: workspace(), encoding: "utf8" });
  const cli = `"${process.execPath}" "${CLI}"`;
  // `| true` closes the pipe before the CLI has started, so every write meets EPIPE.
  for (const line of [`${cli} --help | head -1`, `${cli} --help | true`, `${cli} spec.toml --stdout | head -1`, `${cli} spec.toml --stdout | true`, `${cli} schema | true`]) {
    const result = sh(line);
    assert.is(result.status, 0, `${line}: ${result.stderr}`);
    assert.not.match(result.stderr, /EPIPE|Error:|\n\s+at /, line);
  }
  const check = sh(`${cli} spec.toml -o net --check | true`);
  assert.is(check.status, 1, "the drift still decides the exit code");
  assert.not.match(check.stderr, /EPIPE|Error:|\n\s+at /);
});

test("--check with --stdout is a usage error (exit 2): --stdout never silently wins", () => {
  const { code, stderr } = run(["spec.toml", "-o", "net", "--check", "--stdout"], workspace());
  assert.is(code, 2);
  assert.match(stderr, /--check.*--stdout|--stdout.*--check/);
  assert.is(stderr.trim().split("\n").length, 1, stderr);
  assert.equal(listing(join(workspace(), "net")), []);
});

/** The CLI with a time limit (a FIFO used to hang it), in its workspace. */
const runBounded = (args: string[], cwd: string) => {
  const result = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: "utf8", timeout: 20_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr, signal: result.signal };
};

/** Our errors: one line each (besides the plan's notes), never a stack trace. */
function assertOneLineError(stderr: string, pattern: RegExp): void {
  const lines = stderr.split("\n").filter((line) => line !== "" && !line.startsWith("gen-networkd: ipv6:"));
  assert.is(lines.length, 1, stderr);
  assert.match(lines[0]!, pattern);
  assert.not.match(stderr, /\n\s+at |node:internal|Error:/);
}

const root = process.getuid?.() === 0;

for (const [name, setup, args, pattern, exit] of [
  ["the output directory is a file (ENOTDIR)", (w: string) => writeFileSync(join(w, "f"), ""), ["-o", "f"], /^f: is a file, not a directory; /, 4],
  ["the output directory is under a file", (w: string) => writeFileSync(join(w, "f"), ""), ["-o", "f/net"], /\/f: is a file, not a directory; /, 4],
  ["networkd.conf.d is a file", (w: string) => { mkdirSync(join(w, "net")); writeFileSync(join(w, "net/networkd.conf.d"), ""); }, ["-o", "net"], /^net\/networkd\.conf\.d: is a file, not a directory; /, 4],
  ["the output directory is a symlink under a file", (w: string) => { writeFileSync(join(w, "f"), ""); symlinkSync("f/sub", join(w, "net")); }, ["-o", "net"], /^net: is a symlink to f\/sub, which is not a directory/, 4],
  ["the output directory is a dangling symlink", (w: string) => symlinkSync("/nonexistent/gen-networkd", join(w, "net")), ["-o", "net"], /^net: is a symlink to \/nonexistent\/gen-networkd, which does not exist; /, 4],
  ["-o ''", () => undefined, ["-o", ""], /-o.*empty|empty.*-o/, 2],
  ["--conf-dir ''", () => undefined, ["-o", "net", "--conf-dir", ""], /--conf-dir.*empty|empty.*--conf-dir/, 2],
  ["a directory at one of our names (EISDIR)", (w: string) => mkdirSync(join(w, "net/50-wg0.network"), { recursive: true }), ["-o", "net"], /^net\/50-wg0\.network: is a directory, not a regular file; /, 3],
  ["a FIFO at one of our names", (w: string) => { mkdirSync(join(w, "net")); spawnSync("mkfifo", [join(w, "net/50-wg0.network")]); }, ["-o", "net"], /^net\/50-wg0\.network: is a FIFO, not a regular file; /, 3],
  ["/dev/zero at one of our names", (w: string) => { mkdirSync(join(w, "net")); symlinkSync("/dev/zero", join(w, "net/50-wg0.netdev")); }, ["-o", "net"], /^net\/50-wg0\.netdev: is a character device, not a regular file; /, 3],
] as const) {
  test(`file-system fault: ${name}: one line, exit ${exit}, nothing written`, () => {
    setup(workspace());
    const before = spawnSync("find", [".", "-printf", "%p %y %s\\n"], { cwd: workspace(), encoding: "utf8" }).stdout;
    for (const extra of [[], ["--check"]]) {
      const { code, stderr, signal } = runBounded(["spec.toml", ...args, ...extra], workspace());
      assert.is(signal, null, "finished in time");
      if (extra.length === 0 || exit !== 4) {
        assert.is(code, exit, stderr);
        assertOneLineError(stderr, pattern);
      } else {
        // --check reads only: a directory that cannot be read is an error, one that is missing is drift.
        assert.ok(code === 4 || code === 1, stderr);
        assert.not.match(stderr, /\n\s+at |node:internal|Error:/);
      }
    }
    assert.is(spawnSync("find", [".", "-printf", "%p %y %s\\n"], { cwd: workspace(), encoding: "utf8" }).stdout, before, "nothing changed");
  });
}

test("a dangling symlink elsewhere in the directory is no obstacle, to writing or to --check", () => {
  mkdirSync(join(workspace(), "net"));
  symlinkSync("/nonexistent/gen-networkd", join(workspace(), "net/10-other.network"));
  assert.is(run(["spec.toml", "-o", "net"], workspace()).code, 0);
  assert.is(run(["spec.toml", "-o", "net", "--check"], workspace()).code, 0);
});

test("/dev/zero or a FIFO as a prefix list: refused as not a regular file, exit 1, bounded", () => {
  spawnSync("mkfifo", [join(workspace(), "fifo.txt")]);
  for (const list of ["/dev/zero", "fifo.txt"]) {
    writeFileSync(join(workspace(), "list.toml"), seed.replace("[split]", `[split]\nexclude_files = ["${list}"]`));
    const { code, stderr, signal } = runBounded(["list.toml", "-o", "net"], workspace());
    assert.is(signal, null, `${list}: finished in time`);
    assert.is(code, 1, stderr);
    assertOneLineError(stderr, /split\.exclude_files\[0\]: cannot read ".*": (a character device|a FIFO), not a regular file/);
  }
});

/** Runs a shell script in a private mount namespace: mounts made there vanish with it. */
const inMountNamespace = (script: string, cwd: string) =>
  spawnSync("unshare", ["--mount", "--propagation", "private", "bash", "-euc", script], { cwd, encoding: "utf8", timeout: 60_000 });
const cli = `"${process.execPath}" "${CLI}"`;

for (const [name, mount, pattern] of [
  ["a read-only mount (EROFS)", "mount -t tmpfs -o size=1m tmpfs m && mkdir m/net && mount -o remount,ro m", /^m\/net: cannot write: read-only file system \(EROFS\); /],
  ["an empty read-only mount (EROFS while creating the directory)", "mount -t tmpfs -o ro,size=1m tmpfs m", /m\/net: cannot create the directory: read-only file system \(EROFS\); /],
  ["a full file system (ENOSPC)", "mount -t tmpfs -o size=8k tmpfs m && mkdir m/net && head -c 4096 /dev/zero > m/fill", /^m\/net(\/networkd\.conf\.d)?: cannot write: no space left on the device \(ENOSPC\); /],
  ["no free inodes (ENOSPC)", "mount -t tmpfs -o size=1m,nr_inodes=4 tmpfs m && mkdir m/net m/a", /^m\/net(\/networkd\.conf\.d)?: cannot (write|lock|create the directory): no space left on the device \(ENOSPC\); /],
] as const) {
  test(`file-system fault: ${name}: one line, exit 4, nothing left behind`, () => {
    if (!root) return console.log("  (skipped: needs root for a private mount namespace)");
    mkdirSync(join(workspace(), "m"));
    const result = inMountNamespace(`${mount}; before=$(find m -printf '%p %y %s\\n'); set +e; ${cli} spec.toml -o m/net 2>err; code=$?; set -e; cat err >&2; after=$(find m -printf '%p %y %s\\n'); [ "$before" = "$after" ] || { echo "changed: $after" >&2; exit 9; }; exit $code`, workspace());
    assert.is(result.status, 4, result.stderr);
    assertOneLineError(result.stderr, pattern);
  });
}

test("file-system fault: permission denied as a user other than root (EACCES): one line naming the directory, exit 4", () => {
  if (!root) return console.log("  (skipped: needs root to run as nobody)");
  mkdirSync(join(workspace(), "net"));
  spawnSync("chmod", ["0755", workspace()]);
  const asNobody = (args: string[]) =>
    spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, CLI, ...args], { cwd: workspace(), encoding: "utf8" });
  for (const [args, pattern] of [
    [["spec.toml", "-o", "net"], /^net: cannot (write|lock): permission denied \(EACCES\); run it as root \(sudo\)/],
    [["spec.toml", "-o", "net/sub"], /net\/sub: cannot create the directory: permission denied \(EACCES\); run it as root \(sudo\)/],
  ] as const) {
    const result = asNobody([...args]);
    assert.is(result.status, 4, result.stderr);
    assertOneLineError(result.stderr, pattern);
  }
  assert.equal(listing(join(workspace(), "net")), []);
});

const confFiles = (w: string, dir: string) => listing(join(w, dir)).filter((n) => n.endsWith(".conf"));

test("stale: --format all, then --format nix removes the networkd files and the drop-in", () => {
  assert.is(run(["spec.toml", "-o", "net", "--format", "all"], workspace()).code, 0);
  const { code, stderr } = run(["spec.toml", "-o", "net", "--format", "nix"], workspace());
  assert.is(code, 0, stderr);
  assert.equal(listing(join(workspace(), "net")).filter((n) => !n.startsWith(".")), ["networkd.conf.d", "wg0.nix"]);
  assert.equal(confFiles(workspace(), "net/networkd.conf.d"), []);
});

test("stale: a changed --conf-dir removes the drop-in from the old one", () => {
  assert.is(run(["spec.toml", "-o", "net", "--conf-dir", "conf-a"], workspace()).code, 0);
  assert.is(run(["spec.toml", "-o", "net", "--conf-dir", "conf-b"], workspace()).code, 0);
  assert.equal(confFiles(workspace(), "conf-a"), []);
  assert.equal(confFiles(workspace(), "conf-b"), ["50-wg0.conf"]);
  assert.is(run(["spec.toml", "-o", "net"], workspace()).code, 0);
  assert.equal(confFiles(workspace(), "conf-b"), []);
  assert.equal(confFiles(workspace(), "net/networkd.conf.d"), ["50-wg0.conf"]);
});

test("stale: a changed interface removes the old interface's files; another spec's stay", () => {
  writeFileSync(join(workspace(), "wg1.toml"), otherSpec(1));
  assert.is(run(["wg1.toml", "-o", "net"], workspace()).code, 0);
  assert.is(run(["spec.toml", "-o", "net"], workspace()).code, 0);
  writeFileSync(join(workspace(), "spec.toml"), seed.replaceAll("wg0", "wg7"));
  const { code, stdout, stderr } = run(["spec.toml", "-o", "net"], workspace());
  assert.is(code, 0, stderr);
  assert.match(stdout, /net\/50-wg0\.netdev\s+removed/);
  assert.equal(listing(join(workspace(), "net")).filter((n) => n.endsWith(".netdev")), ["50-wg1-split.netdev", "50-wg1.netdev", "50-wg7-split.netdev", "50-wg7.netdev"]);
  assert.equal(confFiles(workspace(), "net/networkd.conf.d"), ["50-wg1.conf", "50-wg7.conf"]);
});

test("stale: only files with our names are pruned: a marked backup or README stays", () => {
  assert.is(run(["spec.toml", "-o", "net"], workspace()).code, 0);
  const marked = readFileSync(join(workspace(), "net/50-wg0.network"), "utf8");
  for (const name of ["50-wg0.network.bak", "README", "50-wg0.network~"]) writeFileSync(join(workspace(), "net", name), marked);
  assert.is(run(["spec.toml", "-o", "net", "--prefix", "60"], workspace()).code, 0);
  assert.equal(listing(join(workspace(), "net")).filter((n) => !n.startsWith("60-") && !n.startsWith(".")), ["50-wg0.network.bak", "50-wg0.network~", "README", "networkd.conf.d"]);
});

test("stale: nothing is pruned through a networkd.conf.d symlink into another directory", () => {
  mkdirSync(join(workspace(), "net"));
  mkdirSync(join(workspace(), "elsewhere"));
  symlinkSync("../elsewhere", join(workspace(), "net/networkd.conf.d"));
  assert.is(run(["spec.toml", "-o", "net", "--prefix", "40"], workspace()).code, 0);
  assert.equal(confFiles(workspace(), "elsewhere"), ["40-wg0.conf"]);
  const { code, stderr } = run(["spec.toml", "-o", "net"], workspace());
  assert.is(code, 0, stderr);
  assert.equal(confFiles(workspace(), "elsewhere"), ["40-wg0.conf", "50-wg0.conf"], "the other directory's file stays");
  assert.match(stderr, /net\/networkd\.conf\.d: is a symlink; stale files there are not removed/);
});

test("stale: zero-byte temporary files of many killed runs are all removed", () => {
  mkdirSync(join(workspace(), "net"));
  const names = Array.from({ length: 19 }, (_, i) => `.50-wg0${i % 2 ? "-split" : ""}.network.${deadPid()}.tmp`);
  for (const name of names) writeFileSync(join(workspace(), "net", name), "");
  assert.is(run(["spec.toml", "-o", "net"], workspace()).code, 0);
  assert.equal(listing(join(workspace(), "net")).filter((n) => n.endsWith(".tmp")), []);
});

test("directories are created 0755 whatever the umask: networkd (systemd-network) must read them", () => {
  const result = spawnSync("bash", ["-c", `umask 077 && "${process.execPath}" "${CLI}" spec.toml -o deep/er/net`], { cwd: workspace(), encoding: "utf8" });
  assert.is(result.status, 0, result.stderr);
  for (const dir of ["deep", "deep/er", "deep/er/net", "deep/er/net/networkd.conf.d"]) {
    assert.is(statSync(join(workspace(), dir)).mode & 0o777, 0o755, dir);
  }
});

test("two specs in one directory with the same table, priority or fwmark: refused naming both, nothing written", () => {
  assert.is(run(["spec.toml", "-o", "net"], workspace()).code, 0);
  const before = listing(join(workspace(), "net"));
  for (const [change, pattern] of [
    [(t: string) => t.replace("table = 10086", "table = 10087"), /wg1\.toml: split\.priority: rule priority 10086 is also used by wg0 \(net\/50-wg0-split\.network, from spec\.toml\)/],
    [(t: string) => t.replace("priority = 10086", "priority = 10096"), /wg1\.toml: split\.table: table 10086 is also used by wg0 \(net\/50-wg0-split\.network, from spec\.toml\)/],
  ] as const) {
    writeFileSync(join(workspace(), "wg1.toml"), change(seed.replaceAll("wg0", "wg1")));
    const { code, stderr } = run(["wg1.toml", "-o", "net"], workspace());
    assert.is(code, 3, stderr);
    assert.match(stderr, pattern);
    assert.match(stderr, /give each spec sharing a directory its own/);
    assert.not.match(stderr, /\n\s+at /);
    assert.equal(listing(join(workspace(), "net")), before, "nothing written");
  }
  const udp = (t: string) => t.replace(/^protocols = .*$/m, 'protocols = ["tcp", "udp"]\nfwmark = 51820');
  writeFileSync(join(workspace(), "spec.toml"), udp(seed));
  assert.is(run(["spec.toml", "-o", "net"], workspace()).code, 0);
  writeFileSync(join(workspace(), "wg1.toml"), udp(otherSpec(1)));
  const { code, stderr } = run(["wg1.toml", "-o", "net"], workspace());
  assert.is(code, 3, stderr);
  assert.match(stderr, /wg1\.toml: split\.fwmark: fwmark 51820 is also used by wg0 \(net\/50-wg0(-split)?\.net(dev|work), from spec\.toml\)/);
  writeFileSync(join(workspace(), "wg1.toml"), otherSpec(1));
  assert.is(run(["wg1.toml", "-o", "net"], workspace()).code, 0, "distinct table, priority and fwmark share the directory");
});

test("a file's bytes depend only on what it configures: an exclude edit leaves the .netdev files and the drop-in as they were", () => {
  assert.is(run(["spec.toml", "-o", "net"], workspace()).code, 0);
  const kept = ["50-wg0.netdev", "50-wg0-split.netdev", "50-wg0.network", "networkd.conf.d/50-wg0.conf"];
  const before = kept.map((name) => readFileSync(join(workspace(), "net", name), "utf8"));
  writeFileSync(join(workspace(), "spec.toml"), seed.replace('exclude = ["@local"]', 'exclude = ["@local", "198.18.0.0/15"]'));
  const { code, stdout, stderr } = run(["spec.toml", "-o", "net"], workspace());
  assert.is(code, 0, stderr);
  assert.match(stdout, /net\/50-wg0-split\.network\s+updated/);
  for (const name of kept) assert.match(stdout, new RegExp(`net/${name.replaceAll(".", "\\.")}\\s+unchanged`), name);
  assert.equal(kept.map((name) => readFileSync(join(workspace(), "net", name), "utf8")), before);
  assert.match(before[0]!, /^# gen-networkd: owner=wg0 sha256=[0-9a-f]{64}$/m);
});

test("two specs in one directory: split.inbound = \"direct\" only in the one with the highest priority, else refused naming both", () => {
  assert.is(run(["spec.toml", "-o", "net"], workspace()).code, 0);
  const before = listing(join(workspace(), "net"));
  // wg1 after wg0 (priority 10096): wg0's rule at 10088 would answer wg1's second lookups from main.
  writeFileSync(join(workspace(), "wg1.toml"), seed.replaceAll("wg0", "wg1").replace("table = 10086", "table = 10087").replace("priority = 10086", "priority = 10096"));
  const { code, stderr } = run(["wg1.toml", "-o", "net"], workspace());
  assert.is(code, 3, stderr);
  assert.match(stderr, /wg1\.toml: split\.inbound: wg0 sends this host's source-bound lookups to main at priority 10088, before this spec's capture rules \(net\/50-wg0-split\.network, from spec\.toml\).*set split\.inbound = "capture" in every spec but the one with the highest split\.priority/);
  assert.equal(listing(join(workspace(), "net")), before, "nothing written");
  writeFileSync(join(workspace(), "wg1.toml"), otherSpec(1));
  assert.is(run(["wg1.toml", "-o", "net"], workspace()).code, 0, "before wg0 and capturing every source: accepted");
});

test.run();
