// Write: put rendered files into their directories without ever leaving a
// half-written file, and without touching anything we did not write.
//
// Like wg-quick's config save (tmp + sync + rename), every file is first staged
// as a temporary file in its own directory and fsync'ed; only when all of them
// are staged are they renamed into place, and then our stale files are removed.
// A failure while staging removes the temporaries and leaves the directory as it was.

import { createTwoFilesPatch } from "diff";
import { mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
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
}

export class RefusedWriteError extends Error {}

/** Generated files are not secret; readers (and networkd) need them readable. */
const FILE_MODE = 0o644;
/** Enough of a file to find the ownership header without reading a huge route list. */
const HEAD_BYTES = 1024;

export const pathOf = (file: OutputFile): string => join(file.dir, file.fileName);

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
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

/** Our files for this owner already in a directory (regular files whose head carries our mark). */
async function ownedFiles(dir: string, owner: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  const owned: string[] = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    if (!(await stat(path)).isFile()) continue;
    if (ownerOf(await readHead(path)) === owner) owned.push(path);
  }
  return owned;
}

/** Compares what the plan wants with what the directories hold; reads only. */
export async function diffAgainstDisk(files: readonly OutputFile[], owner: string): Promise<Changes> {
  const changes = {
    create: [] as OutputFile[],
    update: [] as (OutputFile & { old: string })[],
    unchanged: [] as OutputFile[],
    stale: [] as { path: string; old: string }[],
    foreign: [] as (OutputFile & { old: string })[],
  };
  const wanted = new Set(files.map(pathOf));
  for (const file of files) {
    const old = await readIfExists(pathOf(file));
    if (old === undefined) changes.create.push(file);
    else if (ownerOf(old) !== owner) changes.foreign.push({ ...file, old });
    else if (old === file.content) changes.unchanged.push(file);
    else changes.update.push({ ...file, old });
  }
  for (const dir of [...new Set(files.map((f) => f.dir))]) {
    for (const path of await ownedFiles(dir, owner)) {
      if (!wanted.has(path)) changes.stale.push({ path, old: (await readIfExists(path)) ?? "" });
    }
  }
  return changes;
}

export function hasDrift(changes: Changes): boolean {
  return changes.create.length + changes.update.length + changes.stale.length + changes.foreign.length > 0;
}

/** A unified diff from what is on disk to what the plan wants. */
export function unifiedDiff(changes: Changes): string {
  const patch = (path: string, before: string, after: string) => createTwoFilesPatch(path, path, before, after, "on disk", "generated");
  return [
    ...changes.create.map((f) => patch(pathOf(f), "", f.content)),
    ...[...changes.update, ...changes.foreign].map((f) => patch(pathOf(f), f.old, f.content)),
    ...changes.stale.map((f) => patch(f.path, f.old, "")),
  ].join("");
}

async function writeStaged(path: string, content: string): Promise<void> {
  const handle = await open(path, "wx", FILE_MODE);
  try {
    await handle.chmod(FILE_MODE); // the umask must not decide who can read the config
    await handle.writeFile(content, "utf8");
    await handle.sync();
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

/**
 * Applies the changes: refuses (before touching anything) when a file we would
 * write is not ours, unless forced; then stages, renames and prunes.
 */
export async function applyChanges(changes: Changes, options: { force: boolean }): Promise<void> {
  if (changes.foreign.length > 0 && !options.force) {
    throw new RefusedWriteError(
      changes.foreign
        .map((f) => `${pathOf(f)}: exists and was not written by gen-networkd for this tunnel; not touching it (move it away, or pass --force to overwrite it)`)
        .join("\n"),
    );
  }
  const writes = [...changes.create, ...changes.update, ...changes.foreign];
  for (const dir of new Set(writes.map((f) => f.dir))) await mkdir(dir, { recursive: true, mode: 0o755 });

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
  for (const dir of new Set([...writes.map((f) => f.dir), ...changes.stale.map((s) => dirname(s.path))])) await syncDirectory(dir);
}
