// Which systemd the lab runs in H: GEN_NETWORKD_LAB_SYSTEMD=host (the machine's own,
// the default), trixie (Debian 13) or sid (Debian unstable). The Debian ones are
// chroots built by build-roots.sh under GEN_NETWORKD_LAB_ROOTS; networkd,
// networkctl and dbus-daemon then come from the chroot, everything else (ip,
// wireguard-go, wg, node) from the machine. See README.md, "Several networkd versions".

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

export const SYSTEMD_NAMES = ["host", "trixie", "sid"] as const;
export type SystemdName = (typeof SYSTEMD_NAMES)[number];

export interface LabSystemd {
  name: SystemdName;
  /** The root its binaries run from: "/" for the machine's own. */
  root: string;
  /** networkd's major version (`networkctl --version` in the root). */
  version: number;
  /** The package's full version, e.g. "257.13-1~deb13u1". */
  release: string;
}

/** Where build-roots.sh puts the chroots. */
export const labRoots = () => process.env.GEN_NETWORKD_LAB_ROOTS || "/var/cache/gen-networkd-lab";

/** The paths of the systemd binaries the lab runs, inside the root. */
export const SYSTEMD_BINARIES = {
  networkd: "/lib/systemd/systemd-networkd",
  networkctl: "/bin/networkctl",
  dbusDaemon: "/bin/dbus-daemon",
} as const;

/** The selected name, or an error naming the variable and the choices. */
export function labSystemdName(): SystemdName {
  const value = process.env.GEN_NETWORKD_LAB_SYSTEMD || "host";
  if (!(SYSTEMD_NAMES as readonly string[]).includes(value)) {
    throw new Error(`GEN_NETWORKD_LAB_SYSTEMD=${value}: expected one of ${SYSTEMD_NAMES.join(", ")}`);
  }
  return value as SystemdName;
}

/** Why the selected systemd cannot run here, or null when it can. */
export function labSystemdUnavailable(): string | null {
  let name: SystemdName;
  try {
    name = labSystemdName();
  } catch (err) {
    return (err as Error).message;
  }
  const root = name === "host" ? "/" : join(labRoots(), name);
  if (name !== "host" && !existsSync(root)) return `no ${name} root at ${root} (build it: bash test/lab/build-roots.sh ${name})`;
  const missing = Object.values(SYSTEMD_BINARIES).filter((path) => !existsSync(join(root, path)));
  if (missing.length) return `missing in ${name} (${root}): ${missing.join(", ")}`;
  return null;
}

const cache = new Map<SystemdName, LabSystemd>();

/** The systemd the lab runs (throws when labSystemdUnavailable() says it cannot). */
export function labSystemd(): LabSystemd {
  const name = labSystemdName();
  const known = cache.get(name);
  if (known) return known;
  const reason = labSystemdUnavailable();
  if (reason) throw new Error(`lab systemd: ${reason}`);
  const root = name === "host" ? "/" : join(labRoots(), name);
  const argv = name === "host" ? [SYSTEMD_BINARIES.networkctl, "--version"] : ["chroot", root, SYSTEMD_BINARIES.networkctl, "--version"];
  const out = execFileSync(argv[0]!, argv.slice(1), { encoding: "utf8" });
  // "systemd 257 (257.13-1~deb13u1)"
  const match = /^systemd (\d+) \(([^)]*)\)/.exec(out);
  if (!match) throw new Error(`lab systemd: cannot read the version from \`${argv.join(" ")}\`: ${out.split("\n")[0]}`);
  const systemd: LabSystemd = { name, root, version: Number(match[1]), release: match[2]! };
  cache.set(name, systemd);
  return systemd;
}

/** ARGV run with the selected systemd's root (a chroot unless it is the machine's own). */
export function systemdArgv(systemd: LabSystemd, argv: string[]): string[] {
  return systemd.root === "/" ? argv : ["chroot", systemd.root, ...argv];
}
