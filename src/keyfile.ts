// Host checks on the WireGuard key files the spec names (never their content).
//
// networkd runs as user systemd-network: a key it cannot read makes it ignore
// the whole device, and a world-readable key makes it warn "too permissive".
// Both are easy to get wrong (Debian's /etc/wireguard is 0700), so the CLI
// warns, with the command that fixes it, whenever the file exists here.

import { readFile, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

const NETWORKD_USER = "systemd-network";
export const INSTALL_HINT = (path: string) => `install -m 0640 -o root -g ${NETWORKD_USER} YOUR.key ${path}`;

interface Account {
  readonly uid: number;
  readonly gids: ReadonlySet<number>;
}

async function networkdAccount(): Promise<Account | undefined> {
  const read = (path: string) => readFile(path, "utf8").catch(() => "");
  const user = (await read("/etc/passwd")).split("\n").map((l) => l.split(":")).find((f) => f[0] === NETWORKD_USER);
  if (!user) return undefined;
  const gids = new Set([Number(user[3])]);
  for (const group of (await read("/etc/group")).split("\n").map((l) => l.split(":"))) {
    if (group[3]?.split(",").includes(NETWORKD_USER)) gids.add(Number(group[2]));
  }
  return { uid: Number(user[2]), gids };
}

/** Whether the account may do `bits` (4 read, 1 search) on a file with this stat. */
function allows(account: Account, info: { uid: number; gid: number; mode: number }, bits: number): boolean {
  if (info.uid === account.uid) return (info.mode & (bits << 6)) !== 0;
  if (account.gids.has(info.gid)) return (info.mode & (bits << 3)) !== 0;
  return (info.mode & bits) !== 0;
}

/** Bigger than any key file: a file this large is not one, and is not read. */
const MAX_KEY_FILE = 4096;

/** Whether a key file's text is a WireGuard key as networkd reads it: base64 of 32 bytes, whitespace ignored. */
function isWireguardKey(text: string): boolean {
  const base64 = text.replace(/\s+/g, "");
  return base64.length === 44 && Buffer.from(base64, "base64").length === 32 && Buffer.from(base64, "base64").toString("base64") === base64;
}

/** A problem with a key file: the warning as printed, and the command that fixes it (doctor shows it). */
export interface KeyFileWarning {
  readonly text: string;
  readonly fix: string;
}

/** Warnings about one key file; empty when it is fine or does not exist on this machine. */
export async function keyFileWarnings(path: string, specPath: string): Promise<KeyFileWarning[]> {
  let info;
  try {
    info = await stat(path);
  } catch {
    return [];
  }
  if (info.isDirectory()) {
    const example = join(path, "wg0.key");
    return [{ text: `${specPath}: key file ${path} is a directory, not a file; name the key file itself, e.g. ${example}`, fix: `${INSTALL_HINT(example)}, and name ${example} in the spec` }];
  }
  if (!info.isFile()) return [{ text: `${specPath}: key file ${path} is not a regular file; networkd reads the key from a plain file`, fix: INSTALL_HINT(path) }];
  const warnings: KeyFileWarning[] = [];
  const mode = (info.mode & 0o777).toString(8).padStart(4, "0");
  if (info.mode & 0o004) {
    warnings.push({ text: `${specPath}: key file ${path} is world-readable (mode ${mode}); anyone on this machine can read the key and networkd warns it is too permissive: chmod 0640 ${path}`, fix: `chmod 0640 ${path}` });
  }
  const account = await networkdAccount();
  if (account) {
    const blocked = (what: string, fix: string) =>
      warnings.push({ text: `${specPath}: key file ${path} is not readable by ${NETWORKD_USER} because of ${what}; networkd would ignore the device. Fix: ${fix}`, fix });
    for (let dir = dirname(path); dir !== "/"; dir = dirname(dir)) {
      const dirInfo = await stat(dir);
      if (allows(account, dirInfo, 1)) continue;
      // Reinstalling the key in the same directory would not help: open the directory, or move the key out.
      const moved = join("/etc/systemd/network", basename(path));
      blocked(
        `directory ${dir} (mode ${(dirInfo.mode & 0o777).toString(8).padStart(4, "0")})`,
        `chgrp ${NETWORKD_USER} ${dir} && chmod 0750 ${dir}, or move the key: install -m 0640 -o root -g ${NETWORKD_USER} ${path} ${moved} and name ${moved} in the spec`,
      );
      break;
    }
    if (!allows(account, info, 4)) blocked(`${path} (mode ${mode})`, INSTALL_HINT(path));
  }
  // The content is checked where this user may read it, and never shown.
  const content = info.size <= MAX_KEY_FILE ? await readFile(path, "utf8").catch(() => undefined) : "";
  if (content !== undefined && !isWireguardKey(content)) {
    warnings.push({
      text: `${specPath}: key file ${path} does not hold a WireGuard key (32 bytes in base64, 44 characters, as \`wg genkey\` or \`wg genpsk\` print); networkd would refuse the device. Fix: wg genkey > ${path}`,
      fix: `wg genkey > ${path}`,
    });
  }
  return warnings;
}
