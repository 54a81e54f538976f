// The file-system part of the fault campaign, kept as a suite: seeded (FAULT_SEED,
// printed), bounded (a fixed number of cases, each with a time limit), every case
// its own test so that the closing summary counts them.
//
//   faults      a random spec and a fault of one class in the output directory: the
//               run ends in time with a documented exit code and no stack trace; on
//               error nothing changed, on success --check agrees
//   kill -9     a run killed at a random moment, or just after its first temporary
//               file appears: no file at our names is torn (each is complete, of the
//               old or the new generation), and the next run makes one generation
//   concurrent  several processes, several specs and their variants, one directory:
//               every run exits 0 (or refuses clearly with --wait 0), and at the end
//               each spec's files are exactly one of its generations
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, watch, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI, SEED } from "./cli-harness.js";

const SEED_VALUE = Number(process.env.FAULT_SEED ?? 14);
const root = process.getuid?.() === 0;

/** mulberry32: small, seedable, good enough to pick cases. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = random(SEED_VALUE);

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], cwd: string, onStart?: (pid: number) => void): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd, timeout: 30_000, killSignal: "SIGKILL" });
    onStart?.(child.pid!);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A spec of tunnel N in variant V (another table and fwmark: the same files, other bytes). */
function specText(n: number, variant: number): string {
  return SEED.replaceAll("wg0", `wg${n}`)
    .replace("table = 10086", `table = ${10086 + 100 * n + variant}`)
    // Before wg0's rules and capturing every source: only the spec with the highest priority may have split.inbound = "direct".
    .replace("priority = 10086", n === 0 ? "priority = 10086" : `priority = ${10086 - 10 * n}\ninbound = "capture"`);
}

const STACK = /\n\s+at |node:internal|Error:/;
const snapshot = (dir: string) => spawnSync("find", [".", "-printf", "%p %y %s %m\\n"], { cwd: dir, encoding: "utf8" }).stdout.split("\n").sort().join("\n");
const ourUnits = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((n) => /^[0-9]{2}-.*\.(netdev|network)$/.test(n)).sort() : []);

function workspace(): string {
  const work = mkdtempSync(join(tmpdir(), "gen-networkd-fault-fs-"));
  spawnSync("chmod", ["0755", work]);
  return work;
}

// ---------------------------------------------------------------- faults

type Fault = { name: string; needsRoot?: boolean; setup: (work: string) => void; wrap?: (command: string) => string };

const FAULTS: Fault[] = [
  { name: "output dir is a file", setup: (w) => writeFileSync(join(w, "net"), "") },
  { name: "output dir under a file", setup: (w) => (writeFileSync(join(w, "f"), ""), symlinkSync("f/sub", join(w, "net"))) },
  { name: "networkd.conf.d is a file", setup: (w) => (mkdirSync(join(w, "net")), writeFileSync(join(w, "net/networkd.conf.d"), "x")) },
  { name: "output dir a dangling symlink", setup: (w) => symlinkSync("/nonexistent/gen-networkd-fault", join(w, "net")) },
  { name: "a directory at our name", setup: (w) => mkdirSync(join(w, `net/50-${"wgN"}.network`), { recursive: true }) },
  { name: "a FIFO at our name", setup: (w) => (mkdirSync(join(w, "net")), spawnSync("mkfifo", [join(w, "net/50-wgN.netdev")])) },
  { name: "/dev/zero at our name", setup: (w) => (mkdirSync(join(w, "net")), symlinkSync("/dev/zero", join(w, "net/50-wgN-split.network"))) },
  { name: "a dangling symlink beside our files", setup: (w) => (mkdirSync(join(w, "net")), symlinkSync("/nonexistent", join(w, "net/40-other.network"))) },
  { name: "a foreign file at our name", setup: (w) => (mkdirSync(join(w, "net")), writeFileSync(join(w, "net/50-wgN.network"), "[Match]\nName=wgN\n")) },
  { name: "a torn temporary file of a killed run", setup: (w) => (mkdirSync(join(w, "net")), writeFileSync(join(w, "net/.50-wgN.network.999999999.tmp"), "# gen-networkd")) },
  { name: "a stale lock of a killed run", setup: (w) => (mkdirSync(join(w, "net")), writeFileSync(join(w, "net/.gen-networkd.lock"), "pid=999999999 start=1 nonce=x\n")) },
  { name: "read-only mount", needsRoot: true, setup: (w) => mkdirSync(join(w, "net")), wrap: (c) => `mount -t tmpfs -o ro,size=1m tmpfs net && ${c}` },
  { name: "full file system", needsRoot: true, setup: (w) => mkdirSync(join(w, "net")), wrap: (c) => `mount -t tmpfs -o size=8k tmpfs net && head -c 4096 /dev/zero > net/fill && ${c}` },
  { name: "no free inodes", needsRoot: true, setup: (w) => mkdirSync(join(w, "net")), wrap: (c) => `mount -t tmpfs -o size=1m,nr_inodes=3 tmpfs net && ${c}` },
];

const faultCases = Array.from({ length: 28 }, (_, i) => ({ fault: FAULTS[i % FAULTS.length]!, tunnel: Math.floor(rand() * 3), variant: Math.floor(rand() * 2), check: rand() < 0.3 }));

for (const [i, c] of faultCases.entries()) {
  test(`fault ${i + 1}: ${c.fault.name}${c.check ? " (--check)" : ""}`, async () => {
    if (c.fault.needsRoot && !root) return;
    const work = workspace();
    try {
      writeFileSync(join(work, "spec.toml"), specText(c.tunnel, c.variant));
      c.fault.setup(work);
      // The fault names use wgN for the spec's interface.
      for (const name of readdirSync(work, { recursive: true }) as string[]) {
        if (name.includes("wgN")) spawnSync("mv", [join(work, name), join(work, name.replaceAll("wgN", `wg${c.tunnel}`))]);
      }
      const args = ["spec.toml", "-o", "net", ...(c.check ? ["--check"] : [])];
      let result: Run;
      if (c.fault.wrap) {
        const command = `before=$(find net -printf '%p %y %s\\n' | sort); set +e; "${process.execPath}" "${CLI}" ${args.join(" ")}; code=$?; set -e; after=$(find net -printf '%p %y %s\\n' | sort); if [ $code -ne 0 ] && [ "$before" != "$after" ]; then echo "CHANGED ON ERROR" >&2; fi; exit $code`;
        const r = spawnSync("unshare", ["--mount", "--propagation", "private", "bash", "-euc", c.fault.wrap(command)], { cwd: work, encoding: "utf8", timeout: 30_000 });
        result = { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
      } else {
        const before = snapshot(work);
        result = await cli(args, work);
        if (result.code !== 0 && !c.check) assert.is(snapshot(work), before, `${c.fault.name}: nothing changed on error\n${result.stderr}`);
      }
      assert.is(result.signal, null, `${c.fault.name}: ended in time`);
      assert.ok([0, 1, 3, 4].includes(result.code!), `${c.fault.name}: documented exit code, got ${result.code}\n${result.stderr}`);
      if (result.code === 1) assert.ok(c.check, `exit 1 only as --check drift\n${result.stderr}`);
      assert.not.match(result.stderr, STACK, `${c.fault.name}: no stack trace`);
      assert.not.match(result.stderr, /CHANGED ON ERROR/);
      if (result.code === 0 && !c.check) assert.is((await cli([...args, "--check"], work)).code, 0, `${c.fault.name}: written, so --check agrees`);
    } finally {
      spawnSync("chmod", ["-R", "u+rwx", work]);
      rmSync(work, { recursive: true, force: true });
    }
  });
}

// ---------------------------------------------------------------- kill -9

/** A prefix list big enough that a run takes a while: random /24s, seeded. */
function bigList(lines: number): string {
  const r = random(SEED_VALUE + 1);
  return Array.from({ length: lines }, () => `${1 + Math.floor(r() * 222)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}.0/24`).join("\n") + "\n";
}

const KILLS = 16;
const killTally = { killed: 0, finished: 0 };
let killShared: { work: string; generations: Map<string, string>[] } | undefined;

/** Two generations of one spec with a big exclude list, each written once into a reference directory. */
async function killSetup(): Promise<{ work: string; generations: Map<string, string>[] }> {
  if (killShared) return killShared;
  const work = workspace();
  writeFileSync(join(work, "list.txt"), bigList(15_000));
  const generations: Map<string, string>[] = [];
  for (const variant of [0, 1]) {
    writeFileSync(join(work, `v${variant}.toml`), specText(0, variant).replace('exclude = ["@local"]', 'exclude = ["@local"]\nexclude_files = ["list.txt"]'));
    const r = await cli([`v${variant}.toml`, "-o", `ref${variant}`], work);
    assert.is(r.code, 0, r.stderr);
    generations.push(new Map([...ourUnits(join(work, `ref${variant}`)), ...readdirSync(join(work, `ref${variant}/networkd.conf.d`)).map((n) => `networkd.conf.d/${n}`)].map((n) => [n, readFileSync(join(work, `ref${variant}`, n), "utf8")])));
  }
  killShared = { work, generations };
  return killShared;
}

for (let i = 0; i < KILLS; i++) {
  const onFirstTemp = rand() < 0.5;
  const delay = Math.floor(rand() * (onFirstTemp ? 5 : 900));
  test(`kill -9 ${i + 1}: ${onFirstTemp ? `${delay} ms after the first temporary file` : `after ${delay} ms`}`, async () => {
    const { work, generations } = await killSetup();
    const dir = join(work, "net");
    mkdirSync(join(dir, "networkd.conf.d"), { recursive: true });
    const variant = i % 2;
    let watcher: ReturnType<typeof watch> | undefined;
    const victim = cli([`v${variant}.toml`, "-o", "net"], work, (pid) => {
      const kill = () => setTimeout(() => spawnSync("kill", ["-9", String(pid)]), delay);
      if (!onFirstTemp) return void kill();
      watcher = watch(dir, (_event, name) => {
        if (name?.toString().endsWith(".tmp") && !name.toString().includes("lock")) {
          watcher?.close();
          kill();
        }
      });
    });
    const killed = await victim;
    watcher?.close();
    if (killed.signal === "SIGKILL") killTally.killed++;
    else killTally.finished++;
    // No torn file: each file at our names is complete, as one generation or the other wrote it.
    for (const name of [...ourUnits(dir), ...readdirSync(join(dir, "networkd.conf.d")).filter((n) => n.endsWith(".conf")).map((n) => `networkd.conf.d/${n}`)]) {
      const text = readFileSync(join(dir, name), "utf8");
      assert.ok(generations.some((g) => g.get(name) === text), `${name} is complete (${killed.signal ?? `exit ${killed.code}`})`);
    }
    // The next run (of the other generation) succeeds, and leaves exactly that generation.
    const next = await cli([`v${1 - variant}.toml`, "-o", "net"], work);
    assert.is(next.code, 0, next.stderr);
    assert.not.match(next.stderr, STACK);
    assert.is((await cli([`v${1 - variant}.toml`, "-o", "net", "--check"], work)).code, 0, "one generation");
    assert.equal(readdirSync(dir).filter((n) => n.endsWith(".tmp") || n === ".gen-networkd.lock"), [], "no temporary file, no lock left");
    if (i === KILLS - 1) rmSync(work, { recursive: true, force: true });
  });
}

// ---------------------------------------------------------------- concurrent runs

const ROUNDS = 3;
for (let round = 0; round < ROUNDS; round++) {
  const runs = Array.from({ length: 8 }, () => ({ tunnel: Math.floor(rand() * 3), variant: Math.floor(rand() * 2), impatient: rand() < 0.25 }));
  test(`concurrent ${round + 1}: ${runs.length} runs of ${new Set(runs.map((r) => r.tunnel)).size} specs on one directory`, async () => {
    const work = workspace();
    try {
      for (let n = 0; n < 3; n++) for (const v of [0, 1]) writeFileSync(join(work, `wg${n}-v${v}.toml`), specText(n, v));
      const results = await Promise.all(runs.map((r) => cli([`wg${r.tunnel}-v${r.variant}.toml`, "-o", "net", ...(r.impatient ? ["--wait", "0"] : [])], work)));
      for (const [i, result] of results.entries()) {
        assert.not.match(result.stderr, STACK);
        if (runs[i]!.impatient && result.code === 3) assert.match(result.stderr, /\.gen-networkd\.lock: .* is locked by gen-networkd PID \d+/);
        else assert.is(result.code, 0, result.stderr);
      }
      // Each spec that ran: its files are exactly one of its generations.
      for (const tunnel of new Set(runs.map((r) => r.tunnel))) {
        const current = await Promise.all([0, 1].map(async (v) => (await cli([`wg${tunnel}-v${v}.toml`, "-o", "net", "--check"], work)).code));
        const wrote = results.some((r, i) => runs[i]!.tunnel === tunnel && r.code === 0);
        if (wrote) assert.ok(current.includes(0), `wg${tunnel}: one generation is current (--check: ${current})`);
      }
      assert.equal(readdirSync(join(work, "net")).filter((n) => n.endsWith(".tmp") || n === ".gen-networkd.lock"), []);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

test.after(() => {
  const classes = FAULTS.filter((f) => root || !f.needsRoot).length;
  console.log(`fault-fs (seed ${SEED_VALUE}): ${faultCases.length} file-system fault cases of ${classes} classes, ${KILLS} kill -9 runs (${killTally.killed} killed before they ended, ${killTally.finished} finished first), ${ROUNDS} concurrent rounds of 8 runs`);
});

test.run();
