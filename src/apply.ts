// `gen-networkd apply`: the diff, a confirmation, the atomic write (write.ts),
// `networkctl reload`, the tunnel recreated when its .netdev changed, and doctor's
// verdict on the result, in one step.

import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { open, readFile, readlink, rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline/promises";
import { CommandError } from "./command-error.js";
import { doctorChecks, printChecks, readLiveHost, type DoctorOptions } from "./doctor.js";
import { generate } from "./generate.js";
import { localIp, networkdRunning } from "./host-state.js";
import { findShadowing, NETWORKD_DIRS, networkdDirOf, shadowingWarning } from "./networkd-files.js";
import type { Plan } from "./model.js";
import { BATCHING_NETWORKD, ROUTES_AT_ONCE_OLD_NETWORKD } from "./plan.js";
import { plannedRouting } from "./plan-routing.js";
import { columns, painter, type Painter } from "./terminal.js";
import { parseUnitFile } from "./unitfile.js";
import {
  activeTries,
  backupText,
  beginTry,
  claim,
  DEFAULT_STATE_DIR,
  dropResult,
  finishRevert,
  newTryId,
  readRecord,
  readResult,
  refuseIfTrying,
  restoreFiles,
  setDeadline,
  stillRunning,
  stopWatcher,
  takeUnseenResults,
  writeWatcherPid,
  type FileChange,
  type RevertResult,
  type TryRecord,
  type TryState,
} from "./try-state.js";
import {
  applyChanges,
  DirectoryLockedError,
  diffAgainstDisk,
  hasDrift,
  pathOf,
  refuseForeign,
  unifiedDiff,
  withDirectoryLock,
  type Changes,
  type LockOptions,
  type OutputFile,
} from "./write.js";

export interface ApplyOptions extends DoctorOptions {
  readonly yes?: boolean;
  readonly force?: boolean;
  /** Seconds until the try is reverted unless confirmed; undefined: a plain apply. */
  readonly try?: number;
  /** Write to a directory networkd does not read. */
  readonly anyDir?: boolean;
  /** Where tries keep their backups (default /var/lib/gen-networkd). */
  readonly stateDir?: string;
  /** Seconds to wait for another run holding a directory's lock (default 30). */
  readonly wait?: number;
}

const lockOptions = (waitSeconds = 30): LockOptions => ({ waitMs: waitSeconds * 1000, onWait: (message) => process.stderr.write(`gen-networkd: ${message}\n`) });

/** How long apply waits for networkd to configure the planned links before it asks doctor anyway. */
const CONFIGURE_TIMEOUT_MS = 30_000;

function networkctl(args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile("networkctl", args, { encoding: "utf8", timeout: 60_000 }, (error, _stdout, stderr) => {
      if (!error) resolve();
      else reject(new CommandError(`apply: networkctl ${args.join(" ")} failed: ${(stderr || error.message).trim().split("\n")[0]}; is systemd-networkd running (systemctl status systemd-networkd)?`, 1));
    }),
  );
}

/** `systemctl daemon-reload`: systemd reads a changed unit drop-in only then (or at boot). */
function daemonReload(): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile("systemctl", ["daemon-reload"], { encoding: "utf8", timeout: 120_000 }, (error, _stdout, stderr) => {
      if (!error) resolve();
      else reject(new CommandError(`apply: systemctl daemon-reload failed: ${(stderr || error.message).trim().split("\n")[0]}; the files are written, run it yourself`, 1));
    }),
  );
}

/** The link a .netdev text creates ([NetDev] Name=), if any. */
function netdevName(text: string): string | undefined {
  try {
    return parseUnitFile(text).find((s) => s.name === "NetDev")?.entries.find((e) => e.key === "Name")?.value as string | undefined;
  } catch {
    return undefined;
  }
}

/** The first networkd whose `networkctl reload` applies a changed .netdev to the link that exists (systemd 257's NEWS). */
export const RELOAD_UPDATES_NETDEVS = 257;

/** networkd's major version from `networkctl --version` ("systemd 257 (257.13-1~deb13u1)"), or undefined when it cannot be read. */
export async function networkdVersion(): Promise<number | undefined> {
  return new Promise((resolve) =>
    execFile("networkctl", ["--version"], { encoding: "utf8", timeout: 10_000 }, (error, stdout) => {
      const match = error ? null : /^systemd (\d+)/.exec(stdout);
      resolve(match ? Number(match[1]) : undefined);
    }),
  );
}

/** What apply does about changed and removed .netdev files, for one networkd version. */
export interface NetdevSteps {
  /** Links deleted before the reload, so that networkd creates them anew from their .netdev. */
  readonly recreate: string[];
  /** Links whose changed .netdev the reload itself applies, keeping the link. */
  readonly updatedByReload: string[];
}

/**
 * Recreate or reload, for networkd VERSION (undefined: not known). networkd never removes a
 * link whose .netdev is gone: that link is deleted. A changed .netdev: up to 256 networkd
 * applies it only when it creates the link, so the link is recreated; since 257 the reload
 * updates the link in place (its addresses, routes and rules stay), unless the kind changed,
 * which no reload can do. An unknown version gets the recreation, which works on every version.
 */
export function netdevSteps(changes: Changes, version: number | undefined): NetdevSteps {
  const parsed = (text: string) => {
    try {
      return parseUnitFile(text);
    } catch {
      return undefined;
    }
  };
  // Comments do not count: the ownership header changes with every edit of the spec.
  const settings = (text: string) => {
    const sections = parsed(text);
    return sections ? JSON.stringify(sections.map((s) => [s.name, s.entries])) : text;
  };
  const kind = (text: string) => parsed(text)?.find((s) => s.name === "NetDev")?.entries.find((e) => e.key === "Kind")?.value;
  const updatesInPlace = version !== undefined && version >= RELOAD_UPDATES_NETDEVS;
  const changed = [...changes.update, ...changes.foreign].filter((f) => f.fileName.endsWith(".netdev") && settings(f.old) !== settings(f.content));
  const inPlace = changed.filter((f) => updatesInPlace && kind(f.old) === kind(f.content));
  const names = (texts: string[]) => [...new Set(texts.map(netdevName).filter((n): n is string => n !== undefined))].sort();
  return {
    recreate: names([...changed.filter((f) => !inPlace.includes(f)), ...changes.stale.filter((f) => f.path.endsWith(".netdev"))].map((f) => f.old)),
    updatedByReload: names(inPlace.map((f) => f.old)),
  };
}

async function linkExists(name: string): Promise<boolean> {
  try {
    await localIp(["link", "show", "dev", name]);
    return true;
  } catch {
    return false;
  }
}

/** networkd's own state of a link (its state file), e.g. "configured", or undefined. */
async function networkdState(name: string): Promise<string | undefined> {
  try {
    const [link] = JSON.parse(await localIp(["-j", "link", "show", "dev", name])) as { ifindex: number }[];
    const text = await readFile(`/run/systemd/netif/links/${link!.ifindex}`, "utf8");
    return /^ADMIN_STATE=(.*)$/m.exec(text)?.[1];
  } catch {
    return undefined;
  }
}

/** Polls networkd's state of LINKS until each is configured (or failed), or the timeout passes. */
async function waitConfigured(links: readonly string[], timeoutMs: number): Promise<Map<string, string>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = new Map(await Promise.all(links.map(async (l) => [l, (await networkdState(l)) ?? "absent"] as const)));
    if ([...states.values()].every((s) => s === "configured" || s === "failed") || Date.now() > deadline) return states;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function paintDiff(paint: Painter, diff: string): string {
  return diff
    .split("\n")
    .map((line) => (/^\+(?!\+\+)/.test(line) ? paint("green", line) : /^-(?!--)/.test(line) ? paint("red", line) : line))
    .join("\n");
}

async function confirmed(question: string): Promise<boolean> {
  const prompt = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await prompt.question(question)).trim());
  } finally {
    prompt.close();
  }
}

// ------------------------------------------------------------ the directory guard

/** Refuses (exit 3) a DIR networkd does not read, unless --any-dir. */
export async function checkOutputDir(output: string, anyDir: boolean): Promise<void> {
  if (anyDir || (await networkdDirOf(output)) !== undefined) return;
  throw new CommandError(
    `apply: networkd does not read ${output} (it reads ${NETWORKD_DIRS.join(", ")}), so applying there would change nothing; nothing was written; pass --any-dir if that is what you want, or write files for review with \`gen-networkd SPEC -o ${output}\``,
    3,
  );
}

/**
 * networkd 252 and 254 fail links past about 65,000 routes at once (ROUTES_AT_ONCE_OLD_NETWORKD),
 * however they are spread over files: refuse before anything is written, naming the way out.
 */
async function refuseTooManyRoutes(plan: Plan, table: number): Promise<void> {
  if (plan.routes <= ROUTES_AT_ONCE_OLD_NETWORKD) return;
  const version = await networkdVersion();
  if (version === undefined || version >= BATCHING_NETWORKD) return;
  throw new CommandError(
    `apply: the plan has ${plan.routes} routes (table ${table}), and networkd ${version} sends every route at once and fails links past about ${ROUTES_AT_ONCE_OLD_NETWORKD} ("Failed to configure route: Numerical result out of range"); nothing was written; use networkd ${BATCHING_NETWORKD} or later (it sends routes in batches), or a shorter list`,
    3,
  );
}

async function refuseWithoutNetworkd(): Promise<void> {
  if (await networkdRunning()) return;
  throw new CommandError(
    "apply: systemd-networkd is not running (in this network namespace), so nothing could reload the files; nothing was written; start it (systemctl start systemd-networkd), or only write the files with `gen-networkd SPEC -o DIR`",
    3,
  );
}

// ------------------------------------------------------------ telling networkd

interface Activation {
  readonly recreated: string[];
  readonly reloaded: number;
  readonly states: Map<string, string>;
  readonly notes: string[];
}

/**
 * After CHANGES are on disk: deletes the links whose .netdev changed (networkd applies a
 * .netdev only when it creates the link), `networkctl reload`, then waits until networkd
 * reports LINKS configured. SAY prints each step as it happens.
 */
async function activate(changes: Changes, links: readonly string[], say: (line: string) => void): Promise<Activation> {
  const recreated: string[] = [];
  const version = await networkdVersion();
  const netdevs = netdevSteps(changes, version);
  for (const link of netdevs.recreate) {
    if (!(await linkExists(link))) continue;
    say(`recreating ${link}: its .netdev changed and networkd ${version ?? "(version unknown)"} applies a .netdev only when it creates the link; ${link} drops for a moment`);
    await networkctl(["delete", link]);
    recreated.push(link);
  }
  for (const link of netdevs.updatedByReload) {
    say(`${link}: its .netdev changed; networkd ${version} applies it on reload, keeping the link (a WireGuard link's peers are set anew, so their sessions restart)`);
  }
  say("networkctl reload");
  await networkctl(["reload"]);
  const reloaded = Date.now();
  const notes: string[] = [];
  const changedConfs = [...[...changes.create, ...changes.update, ...changes.foreign].map(pathOf), ...changes.stale.map((f) => f.path)].filter((path) => path.endsWith(".conf"));
  const dropInsOf = (dir: string) => changedConfs.filter((path) => basename(dirname(path)) === dir);
  if (dropInsOf("networkd.conf.d").length > 0) {
    notes.push("note: the networkd.conf drop-in changed; networkd reads it only when it starts (until then it may remove foreign rules such as tailscale's): systemctl restart systemd-networkd");
    say(notes.at(-1)!);
  }
  if (dropInsOf("resolved.conf.d").length > 0) {
    notes.push("note: the resolved.conf drop-in (the DNS kill switch) changed; systemd-resolved reads it only when it starts: systemctl restart systemd-resolved");
    say(notes.at(-1)!);
  }
  const services = changedConfs.filter((path) => basename(dirname(path)).endsWith(".service.d")).map((path) => basename(dirname(path)).slice(0, -".d".length));
  if (services.length > 0) {
    // The ordering of split.killswitch_before acts at the next boot; a daemon-reload makes systemd
    // (and `systemctl cat`) see it now. Only the systemd of this host: from another namespace it is another host's.
    if (await underThisHostsSystemd()) {
      say("systemctl daemon-reload");
      await daemonReload();
    } else {
      notes.push(`note: the drop-ins of ${[...new Set(services)].join(", ")} changed; systemd reads them at its next daemon-reload or boot (no systemd runs this host's namespaces here)`);
      say(notes.at(-1)!);
    }
  }
  const states = await waitConfigured(links, CONFIGURE_TIMEOUT_MS);
  if (states.size) say([...states].map(([link, state]) => `${link}: ${state}`).join(", "));
  return { recreated, reloaded, states, notes };
}

function changeRows(changes: Changes): string[][] {
  return [
    ...changes.create.map((f) => [pathOf(f), "created"]),
    ...changes.update.map((f) => [pathOf(f), "updated"]),
    ...changes.foreign.map((f) => [pathOf(f), "overwritten (--force)"]),
    ...changes.stale.map((f) => [f.path, "removed (no longer in the spec)"]),
  ];
}

// ------------------------------------------------------------------- apply

export async function runApply(specPath: string, options: ApplyOptions): Promise<number> {
  const out = process.stdout;
  const paint = painter(out);
  const stateDir = options.stateDir ?? DEFAULT_STATE_DIR;
  await checkOutputDir(options.output, options.anyDir ?? false);
  for (const result of await takeUnseenResults(stateDir)) out.write(`${paint("yellow", "an earlier try was reverted while nobody watched:")}\n${revertReport(result)}\n`);
  await refuseIfTrying(stateDir);
  const { spec, plan, files, dirs } = await generate(specPath, { outputDir: options.output, confDir: options.confDir, prefix: options.prefix });
  for (const note of plan.notes) process.stderr.write(`gen-networkd: ${note}\n`);
  for (const found of await findShadowing(plan, options.output)) process.stderr.write(`gen-networkd: ${shadowingWarning(found)}\n`);
  await refuseTooManyRoutes(plan, spec.split.table);
  const changes = await diffAgainstDisk(files, plan.identity, { alsoPrune: dirs });

  if (!hasDrift(changes)) {
    out.write(`${options.output} already holds what ${specPath} generates; nothing to write or reload${options.try === undefined ? "" : ", so nothing to try"}\n`);
    out.write(`${paint("bold", "doctor:")}\n`);
    return printChecks(await doctorChecks(specPath, options, await readLiveHost()), false, out);
  }
  out.write(paintDiff(paint, unifiedDiff(changes)));
  // A try asks nothing first: nothing it does stays unless it is confirmed afterwards.
  if (options.try === undefined && !options.yes) {
    if (!process.stdin.isTTY || !out.isTTY) {
      throw new CommandError(`apply: no terminal to confirm on, so nothing was written; review the diff above and pass --yes to apply it`, 3);
    }
    if (!(await confirmed(`Write these changes to ${options.output} and reload networkd? [y/N] `))) {
      out.write("nothing written\n");
      return 1;
    }
  }
  refuseForeign(changes, options.force ?? false);
  await refuseWithoutNetworkd();
  const links = plannedRouting(plan).links.map((l) => l.name);
  const say = (line: string) => out.write(`${line}\n`);

  // Under the lock of every directory written, and of the state directory: runs writing the
  // same directories, tries and their reverts go one after another.
  let trying: TryState | undefined;
  const interrupt = new InterruptLatch();
  try {
    const failed = await withDirectoryLock(
      [...new Set([...files.map((f) => f.dir), ...dirs]), stateDir],
      async (): Promise<unknown> => {
        await refuseIfTrying(stateDir); // another try may have begun while the diff was shown
        const now = await diffAgainstDisk(files, plan.identity, { alsoPrune: dirs });
        if (unifiedDiff(now) !== unifiedDiff(changes)) {
          throw new CommandError(`apply: ${options.output} changed while the diff was shown; nothing was written; run apply again to see the new diff`, 3);
        }
        if (options.try !== undefined) {
          trying = await beginTry(stateDir, { id: newTryId(), spec: resolve(specPath), output: resolve(options.output), seconds: options.try, started: Date.now() }, fileChanges(now));
          interrupt.arm();
          await startWatcher(stateDir, trying);
        }
        try {
          await applyChanges(now, { force: options.force ?? false });
          out.write(`${columns(changeRows(now)).join("\n")}\n`);
          await activate(now, links, say);
          return undefined;
        } catch (error) {
          if (!trying) throw error;
          return error;
        }
      },
      lockOptions(options.wait),
    );
    if (failed !== undefined && trying) {
      // A try that could not even be applied is reverted at once, not at its deadline.
      process.stderr.write(`gen-networkd: ${(failed as Error).message}\n`);
      const claimed = await claim(stateDir, trying.id, "revert");
      if (!claimed) throw failed;
      stopWatcher(await watcherOf(claimed));
      const result = await revertTry(stateDir, trying.id, claimed, "requested");
      await dropResult(stateDir, trying.id);
      out.write(`${revertReport(result)}\n`);
      return 1;
    }
    // Ctrl-C typed while the new configuration went live asks for the revert now, not a doctor's report first.
    // `return await`: the latch must stay armed until the decision is made, not until it starts.
    if (trying && interrupt.requested) return await awaitDecision(stateDir, trying, options.try!, 1, interrupt);
    out.write(`${paint("bold", "doctor:")}\n`);
    const healthy = printChecks(await doctorChecks(specPath, options, await readLiveHost()), false, out);
    if (!trying) return healthy;
    return await awaitDecision(stateDir, trying, options.try!, healthy, interrupt);
  } finally {
    interrupt.disarm();
  }
}

/** The files a try backs up: every path CHANGES writes or removes (the record of our files too). */
function fileChanges(changes: Changes): FileChange[] {
  return [
    ...[...changes.create, ...changes.update, ...changes.foreign, ...(changes.record ? [changes.record] : [])].map((f) => ({ path: resolve(pathOf(f)), content: f.content })),
    ...changes.stale.map((f) => ({ path: resolve(f.path) })),
  ];
}

// ------------------------------------------------------------------- --try

/**
 * Whether systemd runs this host: it runs the machine (sd_booted(3)), and we are in its
 * network and mount namespaces. Its units run in PID 1's namespaces, so from `ip netns exec`
 * or a private mount namespace a transient unit would revert (and reload) the wrong host, and
 * a daemon-reload would read another host's drop-ins.
 */
async function underThisHostsSystemd(): Promise<boolean> {
  if (!existsSync("/run/systemd/system")) return false;
  for (const ns of ["net", "mnt"]) {
    const [ours, init] = await Promise.all([readlink(`/proc/self/ns/${ns}`), readlink(`/proc/1/ns/${ns}`)].map((p) => p.catch(() => undefined)));
    if (ours === undefined || ours !== init) return false;
  }
  return true;
}

/**
 * Starts the process that reverts the try at its deadline, detached from this one:
 * it must outlive the terminal, the SSH session and this process. Under systemd it is a
 * transient service (systemd-run): a process merely detached with setsid stays in the
 * session's cgroup, which logind kills with the session when KillUserProcesses=yes.
 * Elsewhere (containers and namespaces without systemd, or other namespaces than
 * PID 1's) it is a new session (setsid) whose parent is not waited for. Returns once the watcher has recorded its PID.
 */
async function startWatcher(stateDir: string, trying: TryState): Promise<void> {
  const argv = [...process.execArgv, process.argv[1]!, "apply", "--watch-try", trying.id, "--state-dir", resolve(stateDir)];
  try {
    if (await underThisHostsSystemd()) {
      await new Promise<void>((done, fail) =>
        execFile(
          "systemd-run",
          ["--unit", `gen-networkd-try-${trying.id}`, "--description", `gen-networkd: revert the try of ${trying.record.spec} unless confirmed`, "--collect", "--quiet", `--setenv=PATH=${process.env.PATH ?? ""}`, "--", process.execPath, ...argv],
          { encoding: "utf8" },
          (error, _stdout, stderr) => (error ? fail(new Error((stderr || error.message).trim())) : done()),
        ),
      );
    } else {
      const log = await open(join(trying.dir, "watcher.log"), "a", 0o600);
      try {
        spawn(process.execPath, argv, { detached: true, stdio: ["ignore", log.fd, log.fd], cwd: "/" }).unref();
      } finally {
        await log.close();
      }
    }
    const deadline = Date.now() + WATCHER_START_MS;
    while (!(await activeTries(stateDir)).some((t) => t.id === trying.id && t.watcher !== undefined && stillRunning(t.watcher))) {
      if (Date.now() > deadline) throw new Error(`it did not start within ${WATCHER_START_MS / 1000} s`);
      await sleep(50);
    }
  } catch (error) {
    await rm(trying.dir, { recursive: true, force: true });
    throw new CommandError(`apply: could not start the process that reverts the try (${(error as Error).message}); nothing was written`, 1);
  }
}

const WATCHER_START_MS = 10_000;
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/**
 * Ctrl-C from the moment a try exists until it is decided. SIGINT's default would kill the
 * apply mid-write or mid-reload and leave the revert to the watcher at the deadline; armed,
 * the signal is remembered and answered by reverting at once, after the write in progress.
 */
class InterruptLatch {
  requested = false;
  private readonly onInterrupt = () => {
    this.requested = true;
  };
  arm(): void {
    process.on("SIGINT", this.onInterrupt);
  }
  disarm(): void {
    process.off("SIGINT", this.onInterrupt);
  }
}

/** A pending try after the new configuration is live: wait for Enter, `apply --confirm`, Ctrl-C (INTERRUPT) or the deadline. */
async function awaitDecision(stateDir: string, trying: TryState, seconds: number, healthy: number, interrupt: InterruptLatch): Promise<number> {
  const out = process.stdout;
  const paint = painter(out);
  const deadline = Date.now() + seconds * 1000;
  // The user gets the full time once the new configuration is live; had this process died
  // before this point, the revert would come at the earlier deadline set when the try began.
  if (!(await setDeadline(trying, deadline))) return reportClaimed(stateDir, trying.id, healthy);
  const tty = process.stdin.isTTY === true && !interrupt.requested;
  let decision: "confirm" | "revert" | undefined;
  const prompt = tty ? createInterface({ input: process.stdin }) : undefined;
  prompt?.on("line", () => (decision ??= "confirm"));
  if (!interrupt.requested) {
    out.write(
      `${paint("bold", `Keep this configuration?`)} ${tty ? "Press Enter to keep it, " : ""}run \`gen-networkd apply --confirm${stateDir === DEFAULT_STATE_DIR ? "" : ` --state-dir ${stateDir}`}\` from another shell to keep it, or Ctrl-C to revert now.\n` +
        `Otherwise the previous files come back at ${new Date(deadline).toLocaleTimeString()} (in ${seconds} s), also if this session dies.\n`,
    );
  }
  try {
    let shown = -1;
    for (;;) {
      if (interrupt.requested) decision ??= "revert";
      if (decision) {
        const claimed = await claim(stateDir, trying.id, decision);
        if (claimed && decision === "confirm") {
          stopWatcher(await watcherOf(claimed));
          await rm(claimed, { recursive: true, force: true });
          if (tty) out.write("\n");
          out.write(`${paint("green", "confirmed:")} keeping the new configuration of ${trying.record.spec}\n`);
          return healthy;
        }
        if (claimed) {
          stopWatcher(await watcherOf(claimed));
          if (tty) out.write("\n");
          const result = await revertTry(stateDir, trying.id, claimed, "requested");
          await dropResult(stateDir, trying.id);
          out.write(`${revertReport(result)}\n`);
          return 1;
        }
        decision = undefined; // the watcher claimed it first: wait for its report
      }
      const state = await tryState(stateDir, trying.id);
      if (state !== "pending" && state !== "reverting") {
        prompt?.close();
        if (tty) out.write("\n");
        return reportClaimed(stateDir, trying.id, healthy);
      }
      const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      if (tty && left !== shown) {
        shown = left;
        out.write(`\r${state === "reverting" ? "reverting…" : `reverting in ${left} s `}   `);
      }
      await sleep(100);
    }
  } finally {
    prompt?.close();
  }
}

async function watcherOf(dir: string): Promise<string | undefined> {
  return readFile(join(dir, "watcher.pid"), "utf8").catch(() => undefined);
}

async function tryState(stateDir: string, id: string): Promise<"pending" | "reverting" | "reverted" | "confirmed"> {
  if (existsSync(join(stateDir, `pending-${id}`))) return "pending";
  if (existsSync(join(stateDir, `reverting-${id}`))) return "reverting";
  return (await readResult(stateDir, id)) ? "reverted" : "confirmed";
}

/** The try is no longer pending here: someone confirmed it (then doctor's verdict, HEALTHY, stands), or the watcher reverted it. */
async function reportClaimed(stateDir: string, id: string, healthy: number): Promise<number> {
  const result = await readResult(stateDir, id);
  if (!result) {
    process.stdout.write(`${painter(process.stdout)("green", "confirmed")} from another shell: keeping the new configuration\n`);
    return healthy;
  }
  await dropResult(stateDir, id);
  process.stdout.write(`${revertReport(result)}\n`);
  return 1;
}

/** The changes a revert makes, as write.ts describes changes: for netdevSteps and activate. */
async function reverseChanges(dir: string, record: TryRecord): Promise<Changes> {
  const changes = { create: [] as OutputFile[], update: [] as (OutputFile & { old: string })[], unchanged: [], stale: [] as { path: string; old: string }[], foreign: [], leftovers: [], notes: [] };
  for (const file of record.files) {
    const current = await readFile(file.path, "utf8").catch(() => undefined);
    const before = file.before === undefined ? undefined : ((await backupText(dir, file)) ?? "");
    const where = { dir: dirname(file.path), fileName: basename(file.path) };
    if (before === undefined) {
      if (current !== undefined) changes.stale.push({ path: file.path, old: current });
    } else if (current === undefined) changes.create.push({ ...where, content: before });
    else changes.update.push({ ...where, content: before, old: current });
  }
  return changes;
}

/** The links the restored .network files configure: what the revert waits for. */
function linksOf(changes: Changes): string[] {
  const names = [...changes.create, ...changes.update]
    .filter((f) => f.fileName.endsWith(".network"))
    .flatMap((f) => {
      try {
        return parseUnitFile(f.content).find((s) => s.name === "Match")?.entries.filter((e) => e.key === "Name").map((e) => String(e.value)) ?? [];
      } catch {
        return [];
      }
    });
  return [...new Set(names)].sort();
}

/** Reverts a claimed try: the files back as they were, networkd told, the result recorded. */
async function revertTry(stateDir: string, id: string, dir: string, trigger: RevertResult["trigger"]): Promise<RevertResult> {
  const claimed = Date.now();
  const record = (await readRecord(dir))!;
  const restore = async (): Promise<RevertResult> => {
    const reverse = await reverseChanges(dir, record);
    const files = await restoreFiles(dir, record);
    const result: RevertResult = { id, spec: record.spec, output: record.output, trigger, deadline: record.deadline, claimed, filesRestored: Date.now(), files, recreated: [], linkStates: {}, notes: [] };
    try {
      const activation = await activate(reverse, linksOf(reverse), (line) => process.stdout.write(`${line}\n`));
      return { ...result, reloaded: activation.reloaded, configured: Date.now(), recreated: activation.recreated, linkStates: Object.fromEntries(activation.states), notes: activation.notes };
    } catch (error) {
      return { ...result, error: (error as Error).message };
    }
  };
  // Getting the old configuration back matters more than waiting politely: a run holding a
  // lock finishes (or dies, and its lock is taken over), so the revert keeps trying.
  for (;;) {
    try {
      const result = await withDirectoryLock([...new Set(record.files.map((f) => dirname(f.path)))], restore, lockOptions(60));
      await finishRevert(stateDir, dir, result);
      return result;
    } catch (error) {
      if (!(error instanceof DirectoryLockedError)) throw error;
    }
  }
}

/** `apply --watch-try ID`: the detached process that reverts the try at its deadline unless it was claimed. */
export async function runTryWatcher(stateDir: string, id: string): Promise<number> {
  process.on("SIGHUP", () => {}); // the session that started the try may end: that is what this process is for
  const pending = join(stateDir, `pending-${id}`);
  await writeWatcherPid(pending);
  for (;;) {
    const record = await readRecord(pending);
    if (!record) return 0; // confirmed, or reverted by `apply --revert`
    const wait = record.deadline - Date.now();
    if (wait <= 0) break;
    await sleep(Math.min(wait, 5000)); // the deadline only moves later; re-read it now and then
  }
  const claimed = await claim(stateDir, id, "revert");
  if (!claimed) return 0;
  const result = await revertTry(stateDir, id, claimed, "deadline");
  process.stdout.write(`${revertReport(result)}\n`);
  return result.error === undefined ? 0 : 1;
}

/** What a revert did, for a person: the files, networkd's links, and how long it took. */
export function revertReport(result: RevertResult): string {
  const why = result.trigger === "deadline" ? "nobody confirmed it in time" : "as requested";
  const rows = result.files.map((f) => [
    f.path,
    { restored: "restored", removed: "removed (the try created it)", recreated: "restored (the try removed it)" }[f.what] + (f.changedDuringTry ? "; it had changed since the try wrote it" : ""),
  ]);
  const ms = (at: number | undefined) => (at === undefined ? "—" : `${at - result.deadline} ms`);
  const links = Object.entries(result.linkStates).map(([link, state]) => `${link}: ${state}`).join(", ");
  return [
    `reverted the try of ${result.spec} (${why}):`,
    ...columns(rows).map((line) => `  ${line}`),
    ...result.recreated.map((link) => `  recreated ${link}`),
    ...result.notes.map((note) => `  ${note}`),
    result.error ? `  telling networkd failed: ${result.error}` : `  networkctl reload${links ? `; ${links}` : ""}`,
    result.trigger === "deadline"
      ? `  after the deadline: files restored in ${ms(result.filesRestored)}, networkd reloaded in ${ms(result.reloaded)}, links configured in ${ms(result.configured)}`
      : `  took ${(result.configured ?? result.filesRestored) - result.claimed} ms`,
  ].join("\n");
}

/** `apply --confirm` and `apply --revert`, from any shell: decides the pending try. */
export async function runDecide(stateDir: string, decision: "confirm" | "revert"): Promise<number> {
  const out = process.stdout;
  const tries = (await activeTries(stateDir)).filter((t) => t.stage === "pending" || decision === "revert");
  if (tries.length === 0) {
    const unseen = await takeUnseenResults(stateDir);
    for (const result of unseen) out.write(`${revertReport(result)}\n`);
    throw new CommandError(`apply: no try is pending (in ${stateDir}), so there is nothing to ${decision}${unseen.length ? "; the one above was already reverted" : ""}`, 1);
  }
  for (const t of tries) {
    // A revert that was interrupted (its process died mid-way) is finished by claiming its directory as it is.
    const claimed = t.stage === "reverting" ? (stillRunning(t.watcher ?? "") ? undefined : t.dir) : await claim(stateDir, t.id, decision);
    if (!claimed) throw new CommandError(`apply: the try of ${t.record.spec} was decided meanwhile (reverted at its deadline, or confirmed); nothing done`, 1);
    stopWatcher(t.watcher);
    if (decision === "confirm") {
      await rm(claimed, { recursive: true, force: true });
      out.write(`confirmed: keeping the configuration the try of ${t.record.spec} wrote to ${t.record.output}\n`);
    } else {
      const result = await revertTry(stateDir, t.id, claimed, "requested");
      await dropResult(stateDir, t.id);
      out.write(`${revertReport(result)}\n`);
    }
  }
  return 0;
}
