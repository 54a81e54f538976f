#!/usr/bin/env node
// Runs every test file (unit, golden, CLI and lab) as its own process and ends
// with one summary line: "N passed, N failed, N skipped".
//
// uvu prints per-file totals only, so this wrapper adds them up. A file that
// dies without printing totals counts as one failure. Arguments filter files by
// substring: `npm test -- lab` runs the lab files only.
//
// Every file under test/lab/ runs once per systemd in GEN_NETWORKD_LAB_SYSTEMDS
// (comma list, default host,trixie,sid; each run gets GEN_NETWORKD_LAB_SYSTEMD),
// so the summary counts each version's runs; other files run once.
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { availableParallelism } from "node:os";

const root = new URL("..", import.meta.url).pathname;

function findTests(dir) {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return name === "node_modules" ? [] : findTests(path);
      return name.endsWith(".test.ts") ? [path] : [];
    });
}

const filters = process.argv.slice(2);
const files = findTests(join(root, "test")).filter(
  (file) => filters.length === 0 || filters.some((f) => relative(root, file).includes(f)),
);
// Lab files mostly wait on the kernel and networkd, so run a few more than there are cores.
const concurrency = Number(process.env.TEST_JOBS ?? availableParallelism() + 1);
const systemds = (process.env.GEN_NETWORKD_LAB_SYSTEMDS ?? "host,trixie,sid").split(",").map((s) => s.trim()).filter(Boolean);
const labDir = join(root, "test", "lab") + "/";
const runs = files.flatMap((file) => (file.startsWith(labDir) ? systemds.map((systemd) => ({ file, systemd })) : [{ file }]));

function count(output, label) {
  const match = new RegExp(`^\\s*${label}:\\s+(\\d+)`, "m").exec(output);
  return match ? Number(match[1]) : undefined;
}

function runFile({ file, systemd }) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, ["--import", "tsx", file], {
      cwd: root,
      env: { ...process.env, FORCE_COLOR: "0", ...(systemd ? { GEN_NETWORKD_LAB_SYSTEMD: systemd } : {}) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("close", (code, signal) => {
      const plain = output.replace(/\x1b\[[0-9;]*m/g, "");
      const total = count(plain, "Total");
      const passed = count(plain, "Passed");
      const skipped = count(plain, "Skipped") ?? 0;
      let result;
      if (total === undefined || passed === undefined) {
        result = { passed: 0, failed: 1, skipped: 0 };
      } else {
        // uvu's Total leaves skipped tests out (test.skip only counts them as Skipped).
        const failed = total - passed;
        // A non-zero exit with every test passed still means something broke (e.g. an unhandled rejection).
        result = { passed, failed: failed === 0 && code !== 0 ? 1 : failed, skipped };
      }
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      const status = result.failed > 0 ? "FAIL" : "ok";
      process.stdout.write(
        `\n=== ${status} ${relative(root, file)}${systemd ? ` [${systemd}]` : ""} (${seconds}s${signal ? `, killed by ${signal}` : ""})\n${plain.trimEnd()}\n`,
      );
      resolve(result);
    });
  });
}

const queue = [...runs];
const results = [];
await Promise.all(
  Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
    while (queue.length > 0) results.push(await runFile(queue.shift()));
  }),
);

const sum = (key) => results.reduce((n, r) => n + r[key], 0);
const failed = sum("failed") + (files.length === 0 ? 1 : 0);
if (files.length === 0) console.log("\nno test files matched");
console.log(`\n${sum("passed")} passed, ${failed} failed, ${sum("skipped")} skipped`);
process.exitCode = failed > 0 ? 1 : 0;
