// What `apply --try` keeps on disk so that a revert never depends on the process
// (or the SSH session) that started the try: the files as they were, byte for
// byte with their modes, owners and mtimes, and a record of what the try wrote.
//
// STATE (default /var/lib/gen-networkd, on disk so that it outlives a reboot) holds:
//
//   .gen-networkd.lock    write.ts's directory lock: held by an apply while it checks, backs up and writes
//   pending-ID/           a try waiting for confirmation: record.json, files/N (the backups),
//                         watcher.pid (the detached process that reverts at the deadline)
//   reverting-ID/         the same, claimed by whoever reverts it
//   reverted-ID.json      what a revert restored and when (kept until an apply has shown it)
//
// Confirming and reverting both start by renaming pending-ID: rename is atomic, so of
// a confirmation and a revert that race at the deadline exactly one wins.

import { createHash, randomBytes } from "node:crypto";
import { lchown, lstat, mkdir, open, readFile, readlink, rename, rm, symlink, unlink } from "node:fs/promises";
import { entriesOf } from "./write.js";
import { readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { CommandError } from "./command-error.js";

export const DEFAULT_STATE_DIR = "/var/lib/gen-networkd";

/** A file as it was before the try: its bytes (in the backup) and what `ls -l` shows. */
export type Before =
  | { readonly kind: "file"; readonly backup: string; readonly mode: number; readonly uid: number; readonly gid: number; readonly mtimeMs: number }
  | { readonly kind: "symlink"; readonly target: string; readonly uid: number; readonly gid: number };

export interface TryFile {
  readonly path: string;
  /** undefined: the file did not exist (the try created it). */
  readonly before?: Before;
  /** sha256 of what the try wrote; undefined: the try removed the file. */
  readonly after?: string;
}

export interface TryRecord {
  readonly version: 1;
  readonly id: string;
  readonly spec: string;
  readonly output: string;
  readonly seconds: number;
  readonly started: string;
  /** Epoch ms: unless confirmed by then, the try is reverted. */
  readonly deadline: number;
  readonly files: readonly TryFile[];
}

export interface RestoredFile {
  readonly path: string;
  readonly what: "restored" | "removed" | "recreated";
  /** Someone changed the file after the try wrote it; it was restored all the same. */
  readonly changedDuringTry: boolean;
}

export interface RevertResult {
  readonly id: string;
  readonly spec: string;
  readonly output: string;
  /** deadline: nobody confirmed in time; requested: `apply --revert`, or Ctrl-C in the terminal that started the try. */
  readonly trigger: "deadline" | "requested";
  readonly deadline: number;
  /** Epoch ms of each step. */
  readonly claimed: number;
  readonly filesRestored: number;
  readonly reloaded?: number;
  readonly configured?: number;
  readonly files: readonly RestoredFile[];
  readonly recreated: readonly string[];
  readonly linkStates: Readonly<Record<string, string>>;
  readonly notes: readonly string[];
  readonly error?: string;
}

const sha256 = (bytes: Buffer | string) => createHash("sha256").update(bytes).digest("hex");
const errno = (error: unknown) => (error as NodeJS.ErrnoException).code;

async function syncPath(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes PATH atomically (temporary file, fsync, rename, directory fsync). */
async function writeAtomic(path: string, content: string | Buffer, mode = 0o600): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const handle = await open(temp, "w", mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
  await syncPath(dirname(path));
}

// ---------------------------------------------------------------- processes

/**
 * The kernel's start time of PID (field 22 of /proc/PID/stat), or undefined when it is
 * gone; a zombie (killed, not yet reaped by its parent) is gone too.
 */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[0] === "Z" || fields[0] === "X" ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

/** Whether PID is still the process that wrote "PID START" (a reused PID is not). */
export function stillRunning(owner: string): boolean {
  const [pid, start] = owner.trim().split(" ");
  return pid !== undefined && /^\d+$/.test(pid) && processStart(Number(pid)) === start;
}

// ------------------------------------------------------------- pending tries

export interface TryState {
  readonly id: string;
  readonly stage: "pending" | "reverting";
  readonly dir: string;
  readonly record: TryRecord;
  /** The watcher's "PID START", when it has started. */
  readonly watcher?: string;
}

/** Every try that is pending or being reverted (normally at most one). */
export async function activeTries(stateDir: string): Promise<TryState[]> {
  const names = await entriesOf(stateDir);
  const tries: TryState[] = [];
  for (const name of names.sort()) {
    const match = /^(pending|reverting)-([0-9a-z-]+)$/.exec(name);
    if (!match) continue;
    const dir = join(stateDir, name);
    try {
      const record = JSON.parse(await readFile(join(dir, "record.json"), "utf8")) as TryRecord;
      const watcher = await readFile(join(dir, "watcher.pid"), "utf8").catch(() => undefined);
      tries.push({ id: match[2]!, stage: match[1] as TryState["stage"], dir, record, ...(watcher === undefined ? {} : { watcher }) });
    } catch (error) {
      if (errno(error) !== "ENOENT") throw error; // claimed or finished while we looked
    }
  }
  return tries;
}

const clock = (ms: number) => new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");

/** Refuses (exit 3) while a try is pending or reverting: its revert would undo whatever we wrote now. */
export async function refuseIfTrying(stateDir: string): Promise<void> {
  const [active] = await activeTries(stateDir);
  if (!active) return;
  const { record } = active;
  const what = `a try of ${record.spec} (started ${clock(Date.parse(record.started))}) ${active.stage === "reverting" ? "is being reverted" : "is pending"}`;
  const watcherAlive = active.watcher !== undefined && stillRunning(active.watcher);
  const next =
    active.stage === "reverting"
      ? watcherAlive ? "wait for it to finish" : "its revert was interrupted: `gen-networkd apply --revert` finishes it"
      : watcherAlive
        ? `confirm it with \`gen-networkd apply --confirm\`, revert it with \`gen-networkd apply --revert\`, or wait until it reverts itself at ${clock(record.deadline)}`
        : "its watcher is gone (a reboot, or it was killed), so nothing reverts it by itself: `gen-networkd apply --confirm` keeps the current files, `gen-networkd apply --revert` restores the ones from before it";
  throw new CommandError(`apply: ${what}; nothing was written; ${next}`, 3);
}

/** A try's id: sortable by time, unique. */
export function newTryId(now = Date.now()): string {
  return `${now.toString(36)}-${randomBytes(4).toString("hex")}`;
}

export interface FileChange {
  readonly path: string;
  /** What the try will write; undefined: the try removes the file. */
  readonly content?: string;
}

/**
 * Backs up every path CHANGES will touch and records the try, durably (fsync), as
 * STATE/pending-ID: built under a temporary name and renamed, so it appears complete.
 */
export async function beginTry(
  stateDir: string,
  meta: { id: string; spec: string; output: string; seconds: number; started: number },
  changes: readonly FileChange[],
): Promise<TryState> {
  const staging = join(stateDir, `.new-${meta.id}`);
  await mkdir(join(staging, "files"), { recursive: true, mode: 0o700 });
  try {
    const files: TryFile[] = [];
    for (const [index, change] of changes.entries()) {
      const before = await backUp(change.path, join(staging, "files"), String(index));
      files.push({
        path: change.path,
        ...(before ? { before } : {}),
        ...(change.content === undefined ? {} : { after: sha256(change.content) }),
      });
    }
    const record: TryRecord = {
      version: 1,
      id: meta.id,
      spec: meta.spec,
      output: meta.output,
      seconds: meta.seconds,
      started: new Date(meta.started).toISOString(),
      deadline: meta.started + meta.seconds * 1000,
      files,
    };
    await writeAtomic(join(staging, "record.json"), `${JSON.stringify(record, null, 2)}\n`);
    await syncPath(join(staging, "files"));
    const dir = join(stateDir, `pending-${meta.id}`);
    await rename(staging, dir);
    await syncPath(stateDir);
    return { id: meta.id, stage: "pending", dir, record };
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
}

async function backUp(path: string, filesDir: string, name: string): Promise<Before | undefined> {
  let info;
  try {
    info = await lstat(path);
  } catch (error) {
    if (errno(error) === "ENOENT") return undefined;
    throw error;
  }
  if (info.isSymbolicLink()) return { kind: "symlink", target: await readlink(path), uid: info.uid, gid: info.gid };
  if (!info.isFile()) throw new CommandError(`apply: ${path} is neither a file nor a symlink; --try cannot back it up; nothing was written`, 3);
  await writeAtomic(join(filesDir, name), await readFile(path));
  return { kind: "file", backup: name, mode: info.mode & 0o7777, uid: info.uid, gid: info.gid, mtimeMs: info.mtimeMs };
}

/** Moves the try's deadline (once the new configuration is live, the user gets the full time). */
export async function setDeadline(state: TryState, deadline: number): Promise<boolean> {
  try {
    const record = { ...state.record, deadline };
    await writeAtomic(join(state.dir, "record.json"), `${JSON.stringify(record, null, 2)}\n`);
    return true;
  } catch (error) {
    if (errno(error) === "ENOENT") return false; // claimed meanwhile
    throw error;
  }
}

export async function readRecord(dir: string): Promise<TryRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, "record.json"), "utf8")) as TryRecord;
  } catch (error) {
    if (errno(error) === "ENOENT") return undefined;
    throw error;
  }
}

export async function writeWatcherPid(dir: string): Promise<void> {
  await writeAtomic(join(dir, "watcher.pid"), `${process.pid} ${processStart(process.pid)}\n`);
}

/**
 * Claims a pending try for a confirmation or a revert: renames pending-ID. Returns
 * the claimed directory, or undefined when someone else claimed it first.
 */
export async function claim(stateDir: string, id: string, as: "confirm" | "revert"): Promise<string | undefined> {
  const to = join(stateDir, `${as === "confirm" ? "confirmed" : "reverting"}-${id}`);
  try {
    await rename(join(stateDir, `pending-${id}`), to);
  } catch (error) {
    if (errno(error) === "ENOENT") return undefined;
    throw error;
  }
  await syncPath(stateDir);
  return to;
}

/** Stops a try's watcher (by PID, only if it is still that process): its try was claimed. */
export function stopWatcher(watcher: string | undefined): void {
  if (watcher === undefined || !stillRunning(watcher)) return;
  try {
    process.kill(Number(watcher.split(" ")[0]), "SIGTERM");
  } catch {
    /* gone meanwhile */
  }
}

// ---------------------------------------------------------------- restoring

/** The bytes the try replaced or removed (for the revert's reload decisions), by path. */
export async function backupText(dir: string, file: TryFile): Promise<string | undefined> {
  return file.before?.kind === "file" ? readFile(join(dir, "files", file.before.backup), "utf8") : undefined;
}

/**
 * Puts every file of a claimed try back as it was: same bytes, mode, owner and
 * mtime (a symlink: same target and owner); removes what the try created. Each
 * file is staged beside its target, fsync'ed and renamed, so none is ever half-written.
 */
export async function restoreFiles(dir: string, record: TryRecord): Promise<RestoredFile[]> {
  const restored: RestoredFile[] = [];
  for (const file of record.files) {
    const current = await lstat(file.path).then(
      (info) => info,
      (error) => {
        if (errno(error) === "ENOENT") return undefined;
        throw error;
      },
    );
    const now = current?.isFile() ? sha256(await readFile(file.path)) : undefined;
    const changedDuringTry = now !== file.after;
    const before = file.before;
    if (before === undefined) {
      if (current) await unlink(file.path);
      restored.push({ path: file.path, what: "removed", changedDuringTry });
      continue;
    }
    const temp = join(dirname(file.path), `.${basename(file.path)}.${process.pid}.revert`);
    await rm(temp, { force: true });
    await mkdir(dirname(file.path), { recursive: true, mode: 0o755 });
    if (before.kind === "symlink") {
      await symlink(before.target, temp);
      await lchown(temp, before.uid, before.gid);
    } else {
      const handle = await open(temp, "wx", before.mode);
      try {
        await handle.writeFile(await readFile(join(dir, "files", before.backup)));
        await handle.chmod(before.mode); // open's mode passes through the umask
        await handle.chown(before.uid, before.gid);
        await handle.utimes(Date.now() / 1000, toMicrosecond(before.mtimeMs));
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
    await rename(temp, file.path);
    restored.push({ path: file.path, what: file.after === undefined ? "recreated" : "restored", changedDuringTry });
  }
  for (const parent of new Set(record.files.map((f) => dirname(f.path)))) await syncPath(parent);
  return restored;
}

/**
 * MS as the seconds utimes takes, aimed at the middle of its nearest microsecond: libuv
 * truncates to microseconds, so the mtime comes back to the microsecond, and restoring a
 * restored file changes nothing.
 */
function toMicrosecond(ms: number): number {
  return (Math.round(ms * 1000) + 0.5) / 1e6;
}

/** Records a finished revert as STATE/reverted-ID.json and drops the claimed directory. */
export async function finishRevert(stateDir: string, dir: string, result: RevertResult): Promise<void> {
  await writeAtomic(join(stateDir, `reverted-${result.id}.json`), `${JSON.stringify(result, null, 2)}\n`);
  await rm(dir, { recursive: true, force: true });
  await syncPath(stateDir);
}

export async function readResult(stateDir: string, id: string): Promise<RevertResult | undefined> {
  try {
    return JSON.parse(await readFile(join(stateDir, `reverted-${id}.json`), "utf8")) as RevertResult;
  } catch (error) {
    if (errno(error) === "ENOENT") return undefined;
    throw error;
  }
}

/** Revert results nobody has been shown yet (the terminal that started the try was gone), oldest first; removed once returned. */
export async function takeUnseenResults(stateDir: string): Promise<RevertResult[]> {
  const names = await entriesOf(stateDir);
  const results: RevertResult[] = [];
  for (const name of names.filter((n) => /^reverted-.*\.json$/.test(n)).sort()) {
    const path = join(stateDir, name);
    const text = await readFile(path, "utf8").catch(() => undefined);
    if (text === undefined) continue;
    results.push(JSON.parse(text) as RevertResult);
    await rm(path, { force: true });
  }
  return results;
}

export async function dropResult(stateDir: string, id: string): Promise<void> {
  await rm(join(stateDir, `reverted-${id}.json`), { force: true });
}
