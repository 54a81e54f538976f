// Write: put rendered files into their directories without ever leaving a
// half-written file, and without touching anything we did not write.
//
// Like wg-quick's config save (tmp + sync + rename), every file is first staged
// as a temporary file in its own directory and fsync'ed; only when all of them
// are staged are they renamed into place, and then our stale files are removed.
// A failure while staging removes the temporaries and leaves the directory as it was.

import { createTwoFilesPatch } from "diff";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Stats } from "node:fs";
import { chmod, link, lstat, mkdir, open, readdir, readFile, readlink, rename, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ownerOf } from "./ownership.js";

export interface OutputFile {
  readonly dir: string;
  readonly fileName: string;
  readonly content: string;
}

export interface Changes {
  readonly create: readonly OutputFile[];
  readonly update: readonly (OutputFile & { readonly old: string })[];
  readonly unchanged: readonly OutputFile[];
  /** Files carrying our mark for this owner that the plan no longer contains. */
  readonly stale: readonly { readonly path: string; readonly old: string }[];
  /** Files we would write whose current version lacks our mark for this owner. */
  readonly foreign: readonly (OutputFile & { readonly old: string })[];
  /** Temporary files of ours whose writer is gone (a run killed while staging). */
  readonly leftovers: readonly string[];
  /** The record of what this spec wrote, as it is to be (written with the files). */
  readonly record?: OutputFile | undefined;
  /** What the run could not do and the user should know (a directory not pruned). */
  readonly notes: readonly string[];
}

/** Where stale files may be, and the record that remembers where they went. */
export interface DiffOptions {
  /** Directories where stale files of ours may be besides the files' own (the drop-in's, under --format nix). */
  readonly alsoPrune?: readonly string[];
  /**
   * The spec whose files these are, and the directory (the output directory) where a
   * record of the files each spec wrote is kept: a changed --conf-dir or interface
   * leaves files where no directory scan finds them, or under another owner.
   */
  readonly record?: { readonly dir: string; readonly spec: string };
}

/**
 * The names we write: NN-NAME.netdev/.network/.conf and NAME.nix. Only files of such
 * names (that carry our mark) are ever pruned: a marked copy (x.network.bak, README) is not ours.
 */
export const isOurFileName = (name: string): boolean => /^[0-9]{2}-[^/]+\.(netdev|network|conf)$|^[^./][^/]*\.nix$/.test(name);

/** The record, hidden from networkd (which reads only .netdev, .network, .link files). */
export const RECORD_NAME = ".gen-networkd.files";

interface RecordEntry {
  readonly owner: string;
  readonly files: readonly string[];
}

async function readRecord(dir: string): Promise<Record<string, RecordEntry>> {
  const text = await readIfExists(join(dir, RECORD_NAME));
  if (text === undefined) return {};
  try {
    const parsed = JSON.parse(text) as { specs?: Record<string, RecordEntry> };
    return parsed.specs ?? {};
  } catch {
    return {}; // an edited record forgets; the files themselves still carry their marks
  }
}

/** A path as short as it can be shown: relative to the working directory when inside it. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== "" && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
}

export class RefusedWriteError extends Error {}

/** The file system failed us (permissions, read-only, full, a file where a directory belongs): one line naming the path. */
export class FileSystemError extends Error {}

/** What each failing call was doing, as the error line says it. */
const DOING: Record<string, string> = {
  mkdir: "create the directory",
  rename: "rename into place",
  unlink: "remove",
  rm: "remove",
  rmdir: "remove",
  link: "lock",
  scandir: "list",
  read: "read",
  chmod: "set the mode of",
};

const REASONS: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOSPC: "no space left on the device",
  EDQUOT: "disk quota exceeded",
  ENOTDIR: "a part of the path is not a directory",
  EISDIR: "is a directory",
  ELOOP: "too many levels of symbolic links",
  ENAMETOOLONG: "file name too long",
  EIO: "input/output error",
  ENOENT: "no such file or directory",
};

const HINTS: Record<string, string> = {
  EACCES: "run it as root (sudo), or write to a directory you own (-o)",
  EPERM: "run it as root (sudo), or write to a directory you own (-o)",
  EROFS: "remount it read-write, or write elsewhere (-o)",
  ENOSPC: "free some space or inodes (df -h, df -i); nothing was changed",
  EDQUOT: "free some space; nothing was changed",
  EIO: "the disk may be failing (see dmesg)",
};

/**
 * A failed file-system call as one line naming the path (the directory, for a temporary
 * file of ours) and a hint; errors that are not the file system's are returned as they are.
 */
export function fileSystemError(error: unknown): unknown {
  const { code, syscall, path } = error as NodeJS.ErrnoException;
  if (error instanceof FileSystemError || error instanceof RefusedWriteError || code === undefined || path === undefined) return error;
  const temp = TEMP_NAME.test(basename(path)) || basename(path) === LOCK_NAME;
  const shown = temp ? dirname(path) : path;
  const doing = temp && syscall !== "mkdir" ? (syscall === "link" || syscall === "rename" || syscall === "unlink" ? DOING[syscall]! : "write") : (DOING[syscall ?? ""] ?? "read");
  const hint = HINTS[code];
  return new FileSystemError(`${shown}: cannot ${doing}: ${REASONS[code] ?? code.toLowerCase()} (${code})${hint ? `; ${hint}` : ""}`);
}

/** Runs a file-system step, reporting its failure as a FileSystemError. */
async function reported<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw fileSystemError(error);
  }
}

/** Kinds of non-regular files, as the refusal names them. */
function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return "a directory";
  if (stats.isFIFO()) return "a FIFO";
  if (stats.isCharacterDevice()) return "a character device";
  if (stats.isBlockDevice()) return "a block device";
  if (stats.isSocket()) return "a socket";
  return "not a regular file";
}

/** Another run holds a directory's lock for longer than we were willing to wait. */
export class DirectoryLockedError extends RefusedWriteError {}

/**
 * The lock of a directory: a file whose content names the process holding it. It is
 * made complete (written to a temporary file, then hard-linked to this name, which
 * fails when it exists), so a reader never sees it half-written.
 */
export const LOCK_NAME = ".gen-networkd.lock";

/** Our temporary files: a staged file or a lock in the making, named after the writer's PID. */
const TEMP_NAME = /^\.(.+)\.([0-9]+)\.tmp$/;

/** This process's start time in clock ticks since boot (Linux), which tells a reused PID from ours. */
function startTime(pid: number): string | undefined {
  try {
    // Field 22 of /proc/PID/stat, counted after the command name, which may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** Whether a process of that PID exists (EPERM: it does, as another user's). */
function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

interface LockHolder {
  readonly pid: number;
  readonly start: string | undefined;
}

function parseHolder(text: string): LockHolder | undefined {
  const match = /^pid=([0-9]+) start=(\S*) nonce=\S+$/m.exec(text);
  return match ? { pid: Number(match[1]), start: match[2] || undefined } : undefined;
}

/** A holder is gone when its PID is free, or taken by a process that started at another time. */
function holderAlive(holder: LockHolder): boolean {
  if (!processExists(holder.pid)) return false;
  const start = startTime(holder.pid);
  return holder.start === undefined || start === undefined || start === holder.start;
}

/** Removes a lock whose holder is gone, unless someone replaced it meanwhile (then it is put back). */
async function breakStaleLock(path: string, seen: string): Promise<void> {
  const aside = join(dirname(path), `${LOCK_NAME}.stale.${process.pid}.tmp`);
  try {
    await rename(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return; // another run broke it first
    throw error;
  }
  try {
    if ((await readFile(aside, "utf8")) !== seen) await link(aside, path).catch(() => undefined);
  } finally {
    await rm(aside, { force: true });
  }
}

async function lockOne(dir: string, me: string, deadline: number, onWait: (message: string) => void): Promise<() => Promise<void>> {
  const path = join(dir, LOCK_NAME);
  const temp = join(dir, `${LOCK_NAME}.${process.pid}.tmp`);
  let waited = false;
  try {
    await writeFile(temp, me, { mode: FILE_MODE }).catch((error: NodeJS.ErrnoException) => {
      throw Object.assign(error, { path: error.path ?? temp });
    });
    for (;;) {
      try {
        await link(temp, path);
        return async () => {
          if ((await readFile(path, "utf8").catch(() => undefined)) === me) await rm(path, { force: true });
        };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      const seen = await readFile(path, "utf8").catch(() => undefined);
      if (seen === undefined) continue;
      const holder = parseHolder(seen);
      if (holder !== undefined && !holderAlive(holder)) {
        await breakStaleLock(path, seen);
        continue;
      }
      const who = holder ? `gen-networkd PID ${holder.pid}` : "something unknown";
      if (Date.now() >= deadline) {
        throw new DirectoryLockedError(
          `${path}: ${dir} is locked by ${who}, which is writing it; try again when it has finished (remove ${path} only if ${holder ? `PID ${holder.pid} is not gen-networkd` : "no gen-networkd runs"})`,
        );
      }
      if (!waited) onWait(`waiting for ${who}, which holds ${path}`);
      waited = true;
      await sleep(20 + Math.random() * 30);
    }
  } finally {
    await rm(temp, { force: true });
  }
}

/** A path as the user wrote it when it is theirs, else absolute (a parent of theirs). */
const shownPath = (path: string, given: string) => (path === resolve(given) ? given : path);

/**
 * Creates dir and its missing parents, each 0755 whatever the umask (networkd runs as
 * systemd-network and must read them); returns the first directory it created. A file,
 * or a dangling symlink, where a directory belongs is named as such.
 */
export async function ensureDirectory(dir: string): Promise<string | undefined> {
  const missing: string[] = [];
  for (let path = resolve(dir); ; path = dirname(path)) {
    let stats: Stats | undefined;
    try {
      stats = await stat(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") throw fileSystemError(error);
      if ((await lstat(path).catch(() => undefined))?.isSymbolicLink()) {
        const target = await readlink(path);
        const what = code === "ENOENT" ? "which does not exist" : "which is not a directory (a file is on its path)";
        throw new FileSystemError(`${shownPath(path, dir)}: is a symlink to ${target}, ${what}; create that directory, or write elsewhere (-o)`);
      }
    }
    if (stats?.isDirectory()) break;
    if (stats !== undefined) throw new FileSystemError(`${shownPath(path, dir)}: is ${stats.isFile() ? "a file" : kindOf(stats)}, not a directory; move it away, or write elsewhere (-o, --conf-dir)`);
    missing.unshift(path);
    if (dirname(path) === path) break;
  }
  let created: string | undefined;
  for (const path of missing) {
    try {
      await mkdir(path, { mode: DIRECTORY_MODE });
    } catch (error) {
      // A concurrent run may have made it first; then it is not ours to set or remove.
      if ((error as NodeJS.ErrnoException).code === "EEXIST" && (await stat(path).catch(() => undefined))?.isDirectory()) continue;
      throw fileSystemError(Object.assign(error as Error, { path: shownPath(path, dir) }));
    }
    await reported(() => chmod(path, DIRECTORY_MODE)); // mkdir's mode passes through the umask
    created ??= path;
  }
  return created;
}

/** rmdir from dir up to top (both included) while they are empty. */
async function removeEmptyDirectories(dir: string, top: string): Promise<void> {
  for (let path = dir; ; path = dirname(path)) {
    try {
      await rmdir(path);
    } catch {
      return;
    }
    if (path === top || dirname(path) === path) return;
  }
}

export interface LockOptions {
  /** How long to wait for another run to finish before refusing; 0 refuses at once. */
  readonly waitMs: number;
  /** Told once per directory when the lock is taken and we wait. */
  readonly onWait?: (message: string) => void;
}

/**
 * Runs body while holding the lock of every directory (created if missing), so that
 * runs writing the same directory, even for different specs, never interleave. A lock
 * whose holder is gone (killed) is taken over; one held longer than waitMs is refused
 * with DirectoryLockedError.
 */
export async function withDirectoryLock<T>(dirs: readonly string[], body: () => Promise<T>, options: LockOptions): Promise<T> {
  const me = `pid=${process.pid} start=${startTime(process.pid) ?? ""} nonce=${randomBytes(8).toString("hex")}\n`;
  const deadline = Date.now() + options.waitMs;
  const releases: (() => Promise<void>)[] = [];
  try {
    // One order for every run, so two runs locking the same two directories never wait on each other.
    const byPath = new Map(dirs.map((dir) => [resolve(dir), dir]));
    for (const dir of [...byPath.keys()].sort().map((path) => byPath.get(path)!)) {
      const created = await ensureDirectory(dir);
      // A directory made only to hold the lock goes again when nothing was written into it.
      if (created !== undefined) releases.push(() => removeEmptyDirectories(resolve(dir), created));
      releases.push(await reported(() => lockOne(dir, me, deadline, options.onWait ?? (() => undefined))));
    }
    return await body();
  } finally {
    for (const release of releases.reverse()) await release();
  }
}

/** Generated files are not secret; readers (and networkd) need them readable. */
const FILE_MODE = 0o644;
/** networkd (user systemd-network) must enter and list every directory of ours. */
const DIRECTORY_MODE = 0o755;
/** Enough of a file to find the ownership header without reading a huge route list. */
const HEAD_BYTES = 1024;

export const pathOf = (file: OutputFile): string => join(file.dir, file.fileName);

/** More than any file we write (a million routes is some 40 MB): a bigger file at our name is not ours. */
const MAX_FILE_BYTES = 256 * 1024 * 1024;

/**
 * A file at one of our names, if there is one: only regular files are read (a FIFO
 * would hang us, /dev/zero never end), and at most MAX_FILE_BYTES of them. A dangling
 * symlink reads as an empty file that is not ours.
 */
async function readIfExists(path: string): Promise<string | undefined> {
  let stats: Stats;
  try {
    stats = await stat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    return (await lstat(path).catch(() => undefined))?.isSymbolicLink() ? "" : undefined;
  }
  if (!stats.isFile()) {
    throw new RefusedWriteError(`${path}: is ${kindOf(stats)}, not a regular file; gen-networkd only reads and replaces regular files: move it away`);
  }
  if (stats.size > MAX_FILE_BYTES) {
    throw new RefusedWriteError(`${path}: is larger (${stats.size} bytes) than any file gen-networkd writes, so it is not ours: move it away`);
  }
  return await readFile(path, "utf8");
}

async function readHead(path: string): Promise<string> {
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, HEAD_BYTES, 0);
    return buffer.subarray(0, bytesRead).toString("utf8");
  } finally {
    await handle.close();
  }
}

/** A regular file of one of our names that carries a mark (any owner's), read whole; else undefined. */
export async function readMarkedFile(path: string): Promise<string | undefined> {
  if (!isOurFileName(basename(path))) return undefined;
  const stats = await lstat(path).catch(() => undefined);
  if (!stats?.isFile() || stats.size > MAX_FILE_BYTES) return undefined;
  const text = await readFile(path, "utf8").catch(() => undefined);
  return text !== undefined && ownerOf(text) !== undefined ? text : undefined;
}

/** The owner a file at path is marked for, if it is a regular file of one of our names. */
async function markedOwner(path: string): Promise<string | undefined> {
  if (!isOurFileName(basename(path))) return undefined;
  const stats = await lstat(path).catch(() => undefined);
  return stats?.isFile() ? ownerOf(await readHead(path)) : undefined;
}

/** A directory's entries; none when it does not exist (yet). */
export async function entriesOf(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
}

/** Our files for this owner already in a directory (regular files of our names whose head carries our mark). */
async function ownedFiles(dir: string, owner: string): Promise<string[]> {
  const names = await entriesOf(dir);
  const owned: string[] = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    if ((await markedOwner(path)) === owner) owned.push(path);
  }
  return owned;
}

/** Our temporary files in a directory whose writing process is gone. */
async function leftoverTemps(dir: string): Promise<string[]> {
  const names = await entriesOf(dir);
  return names
    .sort()
    .filter((name) => {
      const match = TEMP_NAME.exec(name);
      // Our own PID among them is a dead process's too: while diffing we have nothing staged.
      return match !== null && (Number(match[2]) === process.pid || !processExists(Number(match[2])));
    })
    .map((name) => join(dir, name));
}

/** Compares what the plan wants with what the directories hold; reads only. */
export async function diffAgainstDisk(files: readonly OutputFile[], owner: string, options: DiffOptions = {}): Promise<Changes> {
  return reported(async () => {
    const changes = {
      create: [] as OutputFile[],
      update: [] as (OutputFile & { old: string })[],
      unchanged: [] as OutputFile[],
      stale: [] as { path: string; old: string }[],
      foreign: [] as (OutputFile & { old: string })[],
      leftovers: [] as string[],
      record: undefined as OutputFile | undefined,
      notes: [] as string[],
    };
    const wanted = new Set(files.map((f) => resolve(pathOf(f))));
    for (const file of files) {
      const old = await readIfExists(pathOf(file));
      if (old === undefined) changes.create.push(file);
      else if (ownerOf(old) !== owner) changes.foreign.push({ ...file, old });
      else if (old === file.content) changes.unchanged.push(file);
      else changes.update.push({ ...file, old });
    }
    // Stale: ours (name and mark) for this owner in the directories we write, or recorded as this spec's.
    const stale = new Map<string, string>();
    const recordDir = options.record && resolve(options.record.dir);
    const symlinked = async (dir: string) => resolve(dir) !== recordDir && (await lstat(dir).catch(() => undefined))?.isSymbolicLink() === true;
    for (const dir of [...new Set([...files.map((f) => f.dir), ...(options.alsoPrune ?? [])])]) {
      if (await symlinked(dir)) {
        // Pruning through it could delete in a directory the user never named (another output's files).
        changes.notes.push(`${dir}: is a symlink; stale files there are not removed (name the directory it points to with --conf-dir)`);
        continue;
      }
      for (const path of await ownedFiles(dir, owner)) stale.set(resolve(path), path);
      changes.leftovers.push(...(await leftoverTemps(dir)));
    }
    if (options.record) {
      const specs = await readRecord(options.record.dir);
      const spec = resolve(options.record.spec);
      const previous = specs[spec];
      const othersFiles = new Set(Object.entries(specs).flatMap(([other, entry]) => (other === spec ? [] : entry.files)));
      for (const path of previous?.files ?? []) {
        if (othersFiles.has(path) || stale.has(path) || (await symlinked(dirname(path)))) continue;
        if ((await markedOwner(path)) === previous!.owner) stale.set(path, shown(path));
      }
      const entry = { owner, files: [...wanted].sort() };
      if (JSON.stringify(previous) !== JSON.stringify(entry)) {
        const record = Object.fromEntries(Object.entries({ ...specs, [spec]: entry }).sort(([a], [b]) => (a < b ? -1 : 1)));
        const comment = "gen-networkd: the files each spec wrote, so that they are removed once stale";
        changes.record = { dir: options.record.dir, fileName: RECORD_NAME, content: `${JSON.stringify({ comment, specs: record }, null, 2)}\n` };
      }
    }
    for (const [absolute, path] of [...stale].sort()) {
      if (!wanted.has(absolute)) changes.stale.push({ path, old: (await readIfExists(path)) ?? "" });
    }
    return changes;
  });
}

export function hasDrift(changes: Changes): boolean {
  return changes.create.length + changes.update.length + changes.stale.length + changes.foreign.length > 0;
}

/** A unified diff from what is on disk to what the plan wants. */
export function unifiedDiff(changes: Changes): string {
  const patch = (path: string, before: string, after: string, from = "on disk", to = "generated") => createTwoFilesPatch(path, path, before, after, from, to);
  return [
    ...changes.create.map((f) => patch(pathOf(f), "", f.content, "not on disk (would be created)")),
    ...[...changes.update, ...changes.foreign].map((f) => patch(pathOf(f), f.old, f.content)),
    ...changes.stale.map((f) => patch(f.path, f.old, "", "on disk", "no longer generated (would be removed)")),
  ].join("");
}

async function writeStaged(path: string, content: string): Promise<void> {
  const handle = await open(path, "wx", FILE_MODE);
  try {
    await handle.chmod(FILE_MODE); // the umask must not decide who can read the config
    await handle.writeFile(content, "utf8");
    await handle.sync();
  } catch (error) {
    // Calls on a handle (write, fsync) name no path: this one failed on the staged file.
    throw Object.assign(error as Error, { path: (error as NodeJS.ErrnoException).path ?? path });
  } finally {
    await handle.close();
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Refuses (before anything is touched) when a file we would write is not ours, unless forced. */
export function refuseForeign(changes: Changes, force: boolean): void {
  if (changes.foreign.length === 0 || force) return;
  throw new RefusedWriteError(
    changes.foreign
      .map((f) => `${pathOf(f)}: exists and was not written by gen-networkd for this tunnel; not touching it (move it away, or pass --force to overwrite it)`)
      .join("\n"),
  );
}

/**
 * Applies the changes: refuses (before touching anything) when a file we would
 * write is not ours, unless forced; then stages, renames and prunes.
 */
export async function applyChanges(changes: Changes, options: { force: boolean }): Promise<void> {
  return reported(async () => {
    refuseForeign(changes, options.force);
    const writes = [...changes.create, ...changes.update, ...changes.foreign, ...(changes.record ? [changes.record] : [])];
    for (const dir of new Set(writes.map((f) => f.dir))) await ensureDirectory(dir);

    const staged: { temp: string; path: string }[] = [];
    try {
      for (const file of writes) {
        const temp = join(file.dir, `.${file.fileName}.${process.pid}.tmp`);
        staged.push({ temp, path: pathOf(file) });
        await writeStaged(temp, file.content);
      }
    } catch (error) {
      await Promise.all(staged.map(({ temp }) => rm(temp, { force: true })));
      throw error;
    }
    for (const { temp, path } of staged) await rename(temp, path);
    for (const { path } of changes.stale) await rm(path);
    for (const path of changes.leftovers) await rm(path, { force: true });
    for (const dir of new Set([...writes.map((f) => f.dir), ...changes.stale.map((s) => dirname(s.path))])) await syncDirectory(dir);
  });
}
