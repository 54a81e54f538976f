// uvu glue for lab tests: skip (with the reason on one line) where the lab cannot
// run, or fail instead when GEN_NETWORKD_LAB=required (as .ci/run sets it).

import { execFileSync } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { suite } from "uvu";
import { NS_PREFIX } from "./proc.js";
import { labSystemdUnavailable } from "./systemd.js";

// The machine's networkctl is needed even with a chroot's systemd: the lab mounts a wrapper over it in H.
const TOOLS = ["ip", "nsenter", "unshare", "setpriv", "chroot", "python3", "wireguard-go", "wg", "networkctl", "getent", "nft", "perl"];

let cached: string | null | undefined;

function which(tool: string): boolean {
  return (process.env.PATH ?? "").split(":").some((dir) => {
    try {
      accessSync(`${dir}/${tool}`, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** Why the lab cannot run here, or null when it can. */
export function labUnavailable(): string | null {
  if (cached !== undefined) return cached;
  cached = (() => {
    if (process.platform !== "linux") return `not Linux (${process.platform})`;
    if (process.getuid?.() !== 0) return "not root (network namespaces need root)";
    const missing = TOOLS.filter((t) => !which(t));
    if (missing.length) return `missing: ${missing.join(", ")} (Debian: wireguard-go wireguard-tools iproute2 dbus systemd nftables)`;
    const systemd = labSystemdUnavailable();
    if (systemd) return systemd;
    if (!existsSync("/dev/net/tun")) return "no /dev/net/tun (wireguard-go needs TUN)";
    if (!process.env.GEN_NETWORKD_LAB_SKIP_PROBE) {
      const name = `${NS_PREFIX}${process.pid}-probe`;
      try {
        execFileSync("ip", ["netns", "add", name], { stdio: "pipe" });
        execFileSync("ip", ["-n", name, "link", "add", "name", "v0", "type", "veth", "peer", "name", "v1"], { stdio: "pipe" });
      } catch (err) {
        return `cannot create a network namespace with a veth pair: ${String((err as { stderr?: Buffer }).stderr ?? err).trim().split("\n")[0]}`;
      } finally {
        try {
          execFileSync("ip", ["netns", "del", name], { stdio: "ignore" });
        } catch {
          /* never created */
        }
      }
    }
    return null;
  })();
  return cached;
}

export const labRequired = () => process.env.GEN_NETWORKD_LAB === "required";

let announced = false;

/**
 * A uvu suite whose tests are skipped (counted as Skipped by uvu) when the lab
 * cannot run, or fail when it is required. Use `before` for the (shared, costly)
 * setup: it runs only when the lab can, and an error in it fails every test with
 * its message instead of vanishing. NEEDS: why this suite's own extra tools are
 * missing (null when present), reported and counted like the lab's own.
 */
export function labSuite<S = unknown>(name: string, setup?: () => Promise<S>, teardown?: (state: S) => Promise<void>, needs: () => string | null = () => null) {
  const s = suite(name);
  const reason = labUnavailable() ?? needs();
  if (reason && !announced) {
    announced = true;
    console.log(labRequired() ? `lab required but unavailable: ${reason}` : `lab skipped: ${reason}`);
  }
  let state: S | undefined;
  let setupError: unknown;
  if (!reason && setup) {
    s.before(async () => {
      try {
        state = await setup();
      } catch (err) {
        setupError = err;
      }
    });
    s.after(async () => {
      if (state !== undefined && teardown) await teardown(state);
    });
  }
  const test = (title: string, fn: (state: S) => unknown | Promise<unknown>) => {
    if (reason) {
      if (labRequired()) {
        s(title, () => {
          throw new Error(`lab required (GEN_NETWORKD_LAB=required) but unavailable: ${reason}`);
        });
      } else s.skip(title, () => {});
      return;
    }
    s(title, async () => {
      if (setupError) throw setupError;
      await fn(state as S);
    });
  };
  return { test, run: () => s.run() };
}
