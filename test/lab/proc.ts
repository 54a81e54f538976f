// Process and namespace bookkeeping for the lab.
//
// Every process the lab starts is tracked by PID and every namespace by name, so
// that they are removed when a test ends, fails, or is interrupted (SIGINT,
// SIGTERM, SIGHUP, or a normal exit with work left over). Processes are killed by
// PID only, never by name. Namespaces left behind by a lab run that was killed
// hard (SIGKILL) are reaped by the next run: their names carry the PID of the
// test process that made them, and a namespace whose owner is gone is emptied
// (its processes killed by PID, as `ip netns pids` lists them) and deleted.

import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, readdirSync, rmSync, type WriteStream } from "node:fs";

/** Prefix of every lab namespace: `gnl<owner pid>-<case tag>-<role>`. */
export const NS_PREFIX = "gnl";

const livePids = new Set<number>();
const liveNamespaces = new Set<string>();
const liveDirs = new Set<string>();
let handlersInstalled = false;

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
}

/** Synchronous last-resort cleanup: used on exit and on signals. */
export function cleanupAllSync(): void {
  for (const pid of livePids) killQuietly(pid, "SIGKILL");
  livePids.clear();
  for (const ns of liveNamespaces) {
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    } catch {
      /* already gone */
    }
  }
  liveNamespaces.clear();
  if (!process.env.GEN_NETWORKD_LAB_KEEP) for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
  liveDirs.clear();
}

export function installCleanupHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.once("exit", cleanupAllSync);
  const signals: [NodeJS.Signals, number][] = [
    ["SIGINT", 130],
    ["SIGTERM", 143],
    ["SIGHUP", 129],
  ];
  for (const [signal, code] of signals) {
    process.once(signal, () => {
      process.stderr.write(`\nlab: ${signal}: removing lab namespaces and processes\n`);
      cleanupAllSync();
      process.exit(code);
    });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes namespaces (and the processes in them) left by lab runs whose test process is gone. */
export function reapStaleNamespaces(): string[] {
  let names: string[];
  try {
    names = readdirSync("/run/netns");
  } catch {
    return [];
  }
  const reaped: string[] = [];
  for (const name of names) {
    const match = new RegExp(`^${NS_PREFIX}(\\d+)-`).exec(name);
    if (!match || alive(Number(match[1]))) continue;
    try {
      const pids = execFileSync("ip", ["netns", "pids", name], { encoding: "utf8" })
        .split(/\s+/)
        .filter(Boolean)
        .map(Number);
      for (const pid of pids) killQuietly(pid, "SIGKILL");
      execFileSync("ip", ["netns", "del", name], { stdio: "ignore" });
      reaped.push(name);
    } catch {
      /* raced with another reaper */
    }
  }
  return reaped;
}

/** A scratch directory removed with the lab (kept with GEN_NETWORKD_LAB_KEEP). */
export function trackDir(dir: string): void {
  liveDirs.add(dir);
}

export function untrackDir(dir: string): void {
  liveDirs.delete(dir);
}

export function trackNamespace(name: string): void {
  liveNamespaces.add(name);
}

export function untrackNamespace(name: string): void {
  liveNamespaces.delete(name);
}

export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly code: number | string | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(`command failed (${code}): ${argv.join(" ")}\n${stderr.trim() || stdout.trim()}`);
  }
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; throws CommandError on a non-zero exit. */
export function run(argv: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      argv[0]!,
      argv.slice(1),
      { encoding: "utf8", timeout: options.timeoutMs ?? 20_000, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException & { code?: number | string }).code ?? null;
          reject(new CommandError(argv, code, stdout, stderr));
        } else resolve({ stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}

/** A long-running process started by the lab, with its output kept in memory and in a log file. */
export class Proc {
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined;
  private readonly listeners = new Set<(line: string) => void>();
  private readonly log: WriteStream;

  private constructor(
    readonly name: string,
    readonly argv: readonly string[],
    private readonly child: ChildProcess,
    logFile: string,
  ) {
    this.log = createWriteStream(logFile, { flags: "a" });
    this.log.write(`# ${new Date().toISOString()} pid ${child.pid}: ${argv.join(" ")}\n`);
    let pending = "";
    const onData = (chunk: Buffer) => {
      this.log.write(chunk);
      pending += chunk.toString("utf8");
      const parts = pending.split("\n");
      pending = parts.pop()!;
      for (const line of parts) {
        this.lines.push(line);
        for (const listener of this.listeners) listener(line);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    this.exited = new Promise((resolve) => {
      let done = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        if (done) return;
        done = true;
        if (pending) {
          this.lines.push(pending);
          for (const listener of this.listeners) listener(pending);
        }
        this.exitCode = code;
        this.log.end(`# exited: ${code ?? signal}\n`);
        resolve(code);
      };
      // "close" comes once the output is drained; a daemon the process forked may hold
      // its pipes open forever, so "exit" (plus a moment for the output) ends it too.
      child.on("close", finish);
      child.on("exit", (code, signal) => {
        livePids.delete(child.pid!);
        setTimeout(() => finish(code, signal), 500).unref();
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** Starts ARGV; resolves once a line matches `ready` (or at once without it). */
  static async start(
    name: string,
    argv: readonly string[],
    options: { logFile: string; env?: NodeJS.ProcessEnv; ready?: RegExp; timeoutMs?: number; stdin?: boolean },
  ): Promise<Proc> {
    installCleanupHandlers();
    const child = spawn(argv[0]!, argv.slice(1), {
      env: { ...process.env, ...options.env },
      stdio: [options.stdin ? "pipe" : "ignore", "pipe", "pipe"],
    });
    if (child.pid === undefined) {
      const err = await new Promise<Error>((resolve) => child.once("error", resolve));
      throw new Error(`${name}: could not start ${argv[0]}: ${err.message}`);
    }
    livePids.add(child.pid);
    const proc = new Proc(name, argv, child, options.logFile);
    if (options.ready) {
      try {
        await proc.waitForLine(options.ready, options.timeoutMs ?? 10_000);
      } catch (err) {
        // Not ready in time: no one will stop it, and its pipes would keep the test process alive.
        await proc.stop();
        throw err;
      }
    }
    return proc;
  }

  /** Resolves with the first line (already seen or future) matching PATTERN. */
  waitForLine(pattern: RegExp, timeoutMs: number, fromIndex = 0): Promise<string> {
    const seen = this.lines.slice(fromIndex).find((l) => pattern.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      const listener = (line: string) => {
        if (pattern.test(line)) {
          cleanup();
          resolve(line);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.name}: no line matching ${pattern} within ${timeoutMs} ms; output:\n${this.tail()}`));
      }, timeoutMs);
      this.listeners.add(listener);
      void this.exited.then((code) => {
        if (!this.listeners.has(listener)) return;
        cleanup();
        reject(new Error(`${this.name} exited (${code}) before printing ${pattern}; output:\n${this.tail()}`));
      });
    });
  }

  /** Writes TEXT to its standard input (started with `stdin: true`). */
  write(text: string): void {
    this.child.stdin!.write(text);
  }

  /** Sends SIGNAL (by PID) and waits until it has exited. */
  async kill(signal: NodeJS.Signals): Promise<number | null> {
    killQuietly(this.pid, signal);
    return this.exited;
  }

  tail(n = 30): string {
    return this.lines.slice(-n).map((l) => `  | ${l}`).join("\n");
  }

  /** SIGTERM, then SIGKILL if it has not exited after GRACE ms. */
  async stop(graceMs = 3000): Promise<void> {
    if (!this.running) return;
    killQuietly(this.pid, "SIGTERM");
    const timer = setTimeout(() => killQuietly(this.pid, "SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Polls CHECK every INTERVAL ms until it returns a value other than undefined; throws with DESCRIBE() after TIMEOUT. */
export async function poll<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  options: { timeoutMs?: number; intervalMs?: number; describe?: () => Promise<string> | string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      const detail = options.describe ? `\n${await options.describe()}` : "";
      throw new Error(`timed out after ${options.timeoutMs ?? 10_000} ms waiting for ${what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 50));
  }
}
