// The built CLI against file-system trouble: concurrent runs on one directory,
// faults of the directory and of the files at our names, closed pipes, stale files.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
const otherSpec = (n: number) =>
  seed.replaceAll("wg0", `wg${n}`).replace("table = 10086", `table = ${10086 + n}`).replace("priority = 10086", `priority = ${10086 + 10 * n}`);

test("concurrent runs on one directory: every run exits 0, one generation per spec at the end", async () => {
  writeFileSync(join(workspace(), "wg1.toml"), otherSpec(1));
  writeFileSync(join(workspace(), "wg2.toml"), otherSpec(2));
  const specs = ["spec.toml", "wg1.toml", "wg2.toml"];
  const runs = await Promise.all(Array.from({ length: 12 }, (_, i) => start([specs[i % 3]!, "-o", "net"], workspace())));
  for (const r of runs) assert.is(r.code, 0, r.stderr);
  assert.equal(listing(join(workspace(), "net")).filter((n) => !n.startsWith(".") || !n.endsWith(".tmp")).length, 13);
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

test.run();
