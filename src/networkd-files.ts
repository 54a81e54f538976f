// Which .network file networkd applies to our links: ours, or one that comes first.
//
// networkd reads .network files from NETWORKD_DIRS; a name in an earlier directory
// masks the same name in later ones (an empty file or a /dev/null symlink masks and
// configures nothing); the rest are sorted by file name across directories, and the
// FIRST whose [Match] matches a link configures it, silently, every later one is
// ignored for that link (systemd.network(5)). So a user's 10-wg0.network, a
// `Name=*` catch-all, or a distribution's file sorting before our 50- files takes
// our tunnel or anchor without any error. Only [Match] Name= can be evaluated for a
// link that does not exist yet; other keys (Type=, Driver=, Host=, …) make a file
// one that "may match", and the messages say so.

import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { isSeries, type Plan, type Section } from "./model.js";
import { parseUnitFile } from "./unitfile.js";

/**
 * The directories networkd reads its .network/.netdev files from, earliest first
 * (systemd.network(5); /lib/systemd/network only exists apart from /usr/lib on
 * systems without merged /usr).
 */
export const NETWORKD_DIRS = ["/etc/systemd/network", "/run/systemd/network", "/usr/local/lib/systemd/network", "/usr/lib/systemd/network", "/lib/systemd/network"] as const;

/** What a .network file's [Match] sections ask of a link, as networkd merges them. */
export interface MatchRules {
  /** Name= patterns in order, each "!"-prefixed when negated; empty: no Name= (or reset by an empty one). */
  readonly names: readonly string[];
  /** The other [Match] keys as "Key=value": they cannot be evaluated before the link exists. */
  readonly others: readonly string[];
}

/** A .network file in one of the directories networkd reads. */
export interface NetworkFile {
  readonly dir: string;
  readonly name: string;
  /** Absent for a mask (an empty file or a /dev/null symlink): it hides later files of its name and configures nothing. */
  readonly match?: MatchRules;
}

/** A .network file we generate, and the link its [Match] Name= names. */
export interface OurNetwork {
  readonly link: string;
  readonly fileName: string;
}

/** A file networkd would (or may) configure one of our links from, instead of ours. */
export interface Shadowing {
  readonly path: string;
  readonly link: string;
  /** Our file for the link. */
  readonly ours: string;
  /** "masks": an empty file or /dev/null symlink of our name, read first; "replaces": a file of our name, read first; "sorts-before": a file of another name whose [Match] takes the link first. */
  readonly kind: "masks" | "replaces" | "sorts-before";
  /** "may": the file's other [Match] keys decide, and they cannot be checked before the link exists. */
  readonly certain: boolean;
  /** Why, as a clause: "sorts before 50-wg0.network and its [Match] Name=wg* matches wg0". */
  readonly why: string;
  /** What to do about it. */
  readonly fix: string;
}

/** The [Match] rules of a unit file's text; Name= and the other keys merged over every [Match] section as networkd does. */
export function matchRules(unitText: string): MatchRules {
  const names: string[] = [];
  const others = new Map<string, string>();
  for (const section of parseUnitFile(unitText)) {
    if (section.name !== "Match") continue;
    for (const { key, value } of section.entries) {
      const text = String(value);
      if (key !== "Name") {
        // Kept only to be named in messages: an empty assignment resets the key, as for Name=.
        if (text === "") others.delete(key);
        else others.set(key, others.has(key) ? `${others.get(key)} ${text}` : text);
        continue;
      }
      if (text === "") {
        names.length = 0;
        continue;
      }
      // A leading "!" negates every pattern of the assignment.
      const negated = text.startsWith("!");
      for (const word of (negated ? text.slice(1) : text).split(/\s+/).filter(Boolean)) names.push(negated ? `!${word}` : word);
    }
  }
  return { names, others: [...others].map(([key, value]) => `${key}=${value}`) };
}

/** fnmatch(3) without flags, as networkd matches Name=: *, ?, [...] (with ! or ^ negating), backslash quoting. */
export function globMatches(pattern: string, name: string): boolean {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") source += "[^]*";
    else if (c === "?") source += "[^]";
    else if (c === "\\" && i + 1 < pattern.length) source += escapeRegExp(pattern[++i]!);
    else if (c === "[") {
      let j = i + 1;
      const negated = pattern[j] === "!" || pattern[j] === "^";
      if (negated) j++;
      let body = "";
      // A "]" right after the opening (and its negation) is a member, not the end.
      if (pattern[j] === "]") (body += "\\]"), j++;
      while (j < pattern.length && pattern[j] !== "]") {
        const m = pattern[j]!;
        body += m === "\\" || m === "^" || m === "[" ? `\\${m}` : m;
        j++;
      }
      if (j >= pattern.length) source += "\\["; // unterminated: a literal "["
      else {
        source += `[${negated ? "^" : ""}${body}]`;
        i = j;
      }
    } else source += escapeRegExp(c);
  }
  return new RegExp(`^${source}$`).test(name);
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** networkd's Name= test: a matching negated pattern excludes; with positive patterns, one must match. */
function namesMatch(patterns: readonly string[], link: string): boolean {
  let positive = false;
  let matched = false;
  for (const pattern of patterns) {
    const negated = pattern.startsWith("!");
    if (!negated) positive = true;
    if (globMatches(negated ? pattern.slice(1) : pattern, link)) {
      if (negated) return false;
      matched = true;
    }
  }
  return positive ? matched : true;
}

/** Whether rules may select LINK, and why (a clause), or undefined when they cannot. */
function matchReason(rules: MatchRules, link: string): { certain: boolean; why: string } | undefined {
  const others = rules.others.join(" ");
  if (rules.names.length === 0) {
    if (rules.others.length === 0) return { certain: true, why: `its [Match] section is empty or missing, so it matches every link, ${link} too` };
    return { certain: false, why: `its [Match] has no Name= and ${others}, which cannot be checked before ${link} exists` };
  }
  if (!namesMatch(rules.names, link)) return undefined;
  const name = `its [Match] Name=${rules.names.join(" ")} matches ${link}`;
  return rules.others.length === 0 ? { certain: true, why: name } : { certain: false, why: `${name}, and whether ${others} holds cannot be checked before ${link} exists` };
}

/** Byte order of file names, as networkd sorts them (strcmp). */
const byName = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * The files networkd would (or may) configure our links from instead of ours. DIRS is
 * networkd's directory order with OUR_DIR among them; FILES what they hold (ours in
 * OUR_DIR need not be written yet: they are taken as there).
 */
export function shadowingFiles(dirs: readonly string[], files: readonly NetworkFile[], ourDir: string, ours: readonly OurNetwork[]): Shadowing[] {
  const ourNames = new Set(ours.map((o) => o.fileName));
  const rank = (dir: string) => dirs.indexOf(dir);
  const candidates = [...files.filter((f) => !(f.dir === ourDir && ourNames.has(f.name))), ...ours.map((o): NetworkFile => ({ dir: ourDir, name: o.fileName }))];
  // The earliest directory's file of each name is the one networkd reads.
  const read = new Map<string, NetworkFile>();
  for (const file of candidates.sort((a, b) => rank(a.dir) - rank(b.dir))) if (!read.has(file.name)) read.set(file.name, file);
  const isOurs = (file: NetworkFile) => file.dir === ourDir && ourNames.has(file.name);
  const found: Shadowing[] = [];
  for (const { link, fileName } of ours) {
    const winner = read.get(fileName)!;
    if (!isOurs(winner)) {
      const path = join(winner.dir, winner.name);
      const why = winner.match ? `has the name of ours in ${winner.dir}, which networkd reads before ${ourDir}, so it replaces ours` : `masks ours (an empty file or a /dev/null symlink in ${winner.dir}, which networkd reads before ${ourDir})`;
      found.push({ path, link, ours: fileName, kind: winner.match ? "replaces" : "masks", certain: true, why, fix: `remove ${path}, or write ours into ${winner.dir}` });
      continue;
    }
    const earlier = [...read.values()].filter((f) => f.match && !isOurs(f) && byName(f.name, fileName) < 0).sort((a, b) => byName(a.name, b.name));
    for (const file of earlier) {
      const reason = matchReason(file.match!, link);
      if (!reason) continue;
      found.push({ path: join(file.dir, file.name), link, ours: fileName, kind: "sorts-before", certain: reason.certain, why: `sorts before ${fileName} and ${reason.why}`, fix: earlierFix(file.name) });
      // networkd stops at the first file that matches: later ones cannot take the link.
      if (reason.certain) break;
    }
  }
  return found;
}

/** Ours sort first with a smaller two-digit prefix, when their name has one to undercut; or theirs goes. */
function earlierFix(theirs: string): string {
  const prefix = /^(\d\d)-/.exec(theirs)?.[1];
  const smaller = prefix !== undefined && prefix !== "00" ? String(Number(prefix) - 1).padStart(2, "0") : undefined;
  return `${smaller ? `regenerate ours with --prefix ${smaller} (sorting before it), or ` : ""}rename, mask or narrow the [Match] of theirs`;
}

/** Our .network files and the link each matches, from the plan. */
export function ourNetworks(plan: Plan): OurNetwork[] {
  return plan.units.flatMap((u) => {
    // The sections themselves, not sectionsOf: that would spell out every route of a long list.
    const match = u.kind === "network" ? u.sections.find((s): s is Section => !isSeries(s) && s.name === "Match") : undefined;
    const name = match?.entries.find((e) => e.key === "Name");
    return name ? [{ fileName: u.fileName, link: String(name.value) }] : [];
  });
}

async function canonical(path: string): Promise<string> {
  return realpath(path).catch(() => resolve(path));
}

/** Whether DIR is (a symlink to) one of NETWORKD_DIRS; that one's name, or undefined. */
export async function networkdDirOf(dir: string, networkdDirs: readonly string[] = NETWORKD_DIRS): Promise<string | undefined> {
  const target = await canonical(dir);
  for (const candidate of networkdDirs) {
    if (resolve(dir) === candidate || (await canonical(candidate)) === target) return candidate;
  }
  return undefined;
}

/**
 * The .network files in DIRS. Tolerant: a directory or file that cannot be read or
 * parsed is left out (networkd would complain about it itself).
 */
export async function readNetworkFiles(dirs: readonly string[]): Promise<NetworkFile[]> {
  const files: NetworkFile[] = [];
  for (const dir of dirs) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names.filter((n) => n.endsWith(".network")).sort(byName)) {
      const path = join(dir, name);
      try {
        const info = await stat(path);
        if (info.isCharacterDevice() || (info.isFile() && info.size === 0)) files.push({ dir, name });
        else if (info.isFile()) files.push({ dir, name, match: matchRules(await readFile(path, "utf8")) });
      } catch {
        // unreadable, a dangling symlink, or not unit-file syntax
      }
    }
  }
  return files;
}

/**
 * The files on this host that would configure our links before ours once ours are in
 * OUTPUT_DIR. A directory networkd does not read (one for review) is taken as read first:
 * files of our names elsewhere are then taken for installed copies of ours.
 */
export async function findShadowing(plan: Plan, outputDir: string, networkdDirs: readonly string[] = NETWORKD_DIRS): Promise<Shadowing[]> {
  const known = await networkdDirOf(outputDir, networkdDirs);
  const ourDir = known ?? resolve(outputDir);
  const dirs = known ? [...networkdDirs] : [ourDir, ...networkdDirs];
  return shadowingFiles(dirs, await readNetworkFiles(dirs), ourDir, ourNetworks(plan));
}

/** One line for the CLI: the file, the link, why, and what to do. */
export function shadowingWarning(s: Shadowing): string {
  return `warning: ${s.path} ${s.why}: networkd ${s.certain ? "would" : "may"} configure ${s.link} from it, not from ${s.ours}; ${s.fix}`;
}
