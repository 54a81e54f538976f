// Host checks on the WireGuard key files the spec names (never their content).
//
// networkd runs as user systemd-network: a key it cannot read makes it ignore
// the whole device, and a world-readable key makes it warn "too permissive".
// Both are easy to get wrong (Debian's /etc/wireguard is 0700), so the CLI
// warns, with the command that fixes it, whenever the file exists here.

import { readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";

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

/** Warnings about one key file; empty when it is fine or does not exist on this machine. */
export async function keyFileWarnings(path: string, specPath: string): Promise<string[]> {
  let info;
  try {
    info = await stat(path);
  } catch {
    return [];
  }
  const warnings: string[] = [];
  const mode = (info.mode & 0o777).toString(8).padStart(4, "0");
  if (info.mode & 0o004) {
    warnings.push(`${specPath}: key file ${path} is world-readable (mode ${mode}); anyone on this machine can read the key and networkd warns it is too permissive: chmod 0640 ${path}`);
  }
  const account = await networkdAccount();
  if (account) {
    let blocked: string | undefined = allows(account, info, 4) ? undefined : `${path} (mode ${mode})`;
    for (let dir = dirname(path); blocked === undefined && dir !== "/"; dir = dirname(dir)) {
      const dirInfo = await stat(dir);
      if (!allows(account, dirInfo, 1)) blocked = `directory ${dir} (mode ${(dirInfo.mode & 0o777).toString(8).padStart(4, "0")})`;
    }
    if (blocked !== undefined) {
      warnings.push(`${specPath}: key file ${path} is not readable by ${NETWORKD_USER} because of ${blocked}; networkd would ignore the device. Fix: ${INSTALL_HINT(path)}`);
    }
  }
  return warnings;
}
