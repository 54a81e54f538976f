// DNS in the lab: systemd-resolved in H (its private mount namespace and D-Bus),
// the lab's DNS responder on the tunnel peer P (10.253.0.1, reached only through
// the tunnel) and another on the LAN router R (192.168.50.1, H's LAN resolver),
// each answering with its own address so a lookup tells who answered, and each
// printing every query it gets, so the test counts them.
//
// H's /etc/resolv.conf (a bind mount inside H's mount namespace only; the
// machine's file is never touched) points to resolved's stub at 127.0.0.53, so a
// plain getaddrinfo (getent) goes through resolved as on a Debian host with
// systemd-resolved installed. resolved reads the DNS servers networkd hands it in
// networkd's link state files, which live in H's /run.

import { existsSync } from "node:fs";
import { writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ADDR } from "./lab.js";
import { LeakproofHost } from "./leakproof.js";
import { CommandError, poll, Proc } from "./proc.js";
import { labSystemd, labSystemdUnavailable, systemdArgv } from "./systemd.js";

const HELPERS = fileURLToPath(new URL("./helpers/", import.meta.url));
/** resolved and its client, run from the root of the systemd the lab runs (a chroot's for 257 and the newest). */
const RESOLVED = "/lib/systemd/systemd-resolved";
const CLI = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));
const RESOLVECTL = "/usr/bin/resolvectl";

/** Why systemd-resolved cannot run in the lab here, or null when it can (the lab's own reasons come first). */
export function resolvedUnavailable(): string | null {
  if (labSystemdUnavailable() !== null) return null;
  const { name, root } = labSystemd();
  const missing = [RESOLVED, RESOLVECTL].filter((path) => !existsSync(join(root, path)));
  return missing.length ? `missing in ${name} (${root}): ${missing.join(", ")} (Debian: systemd-resolved)` : null;
}

/** The resolver on the tunnel peer: P's tunnel address. */
export const TUNNEL_RESOLVER = ADDR.peerTunnel4.split("/")[0]!;
/** H's LAN resolver: the LAN router, as DHCP would hand it out. */
export const LAN_RESOLVER = ADDR.routerLan4;
/** What each responder answers for every A (and AAAA) query: never contacted, only compared. */
export const ANSWER = {
  tunnel: { v4: "192.0.2.10", v6: "2001:db8:53::10" },
  lan: { v4: "192.0.2.20", v6: "2001:db8:53::20" },
} as const;

/** resolved's settings for the lab: nothing but unicast DNS, no cache (every lookup is a query to count), no fallback servers. */
const RESOLVED_CONF = [
  "# Lab-owned: unicast DNS only, every lookup a fresh query, no built-in fallback servers.",
  "[Resolve]",
  "LLMNR=no",
  "MulticastDNS=no",
  "DNSSEC=no",
  "DNSOverTLS=no",
  "Cache=no",
  "FallbackDNS=",
  "",
].join("\n");

export interface Lookup {
  ok: boolean;
  /** The address in the answer: which responder answered. */
  address?: string;
  /** resolvectl only: the link whose servers answered ("wg0", "lan0"). */
  link?: string;
  error?: string;
}

export interface DirectQuery {
  server: string;
  name: string;
  proto: "udp" | "tcp";
  timeoutMs?: number;
}

export class DnsHost {
  private readonly procs: Proc[] = [];
  private responders: Partial<Record<"P" | "R", Proc>> = {};
  resolved?: Proc;

  private constructor(readonly host: LeakproofHost) {}

  /** A lab host whose LAN link has the LAN resolver, with both responders running. Generate, then start(). */
  static async create(tag: string): Promise<DnsHost> {
    const host = await LeakproofHost.create(tag);
    const dns = new DnsHost(host);
    try {
      const dropIns = join(host.lab.etcDir, "10-lab-lan0.network.d");
      await mkdir(dropIns, { mode: 0o755 });
      await writeFile(join(dropIns, "dns.conf"), `# Lab-owned: the LAN's resolver, as DHCP hands it out (no domains, so resolved may use it as a default route).\n[Network]\nDNS=${LAN_RESOLVER}\n`);
      for (const [role, answer] of [["P", ANSWER.tunnel], ["R", ANSWER.lan]] as const) {
        const proc = await Proc.start(`dns-${role}`, ["ip", "netns", "exec", host.lab.ns[role], process.execPath, join(HELPERS, "dns-responder.mjs"), answer.v4, answer.v6], {
          logFile: host.lab.log(`dns-${role}`),
          ready: /^ready$/,
        });
        dns.procs.push(proc);
        dns.responders[role] = proc;
      }
    } catch (err) {
      await dns.destroy();
      throw err;
    }
    return dns;
  }

  get lab() {
    return this.host.lab;
  }

  /** Starts networkd and the tunnels (LeakproofHost.start), then resolved, with H's /etc/resolv.conf on its stub. */
  async start(): Promise<void> {
    await this.host.start();
    await writeFile(this.lab.hostPath("/etc/systemd/resolved.conf"), RESOLVED_CONF);
    const resolvConf = join(this.lab.work, "resolv.conf");
    await writeFile(resolvConf, "# Lab-owned, bind-mounted over /etc/resolv.conf in H only: resolved's stub.\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n", { mode: 0o644 });
    await this.lab.inHost(["mount", "--bind", resolvConf, "/etc/resolv.conf"]);
    this.resolved = await Proc.start("resolved-H", this.lab.hostArgv(systemdArgv(this.lab.systemd, [RESOLVED])), { logFile: this.lab.log("resolved-H"), env: { SYSTEMD_LOG_LEVEL: "debug" } });
    this.procs.push(this.resolved);
    await poll("resolved on H's private D-Bus", async () => ((await this.resolvectlRun(["status"]).catch(() => undefined)) === undefined ? undefined : true), {
      timeoutMs: 10_000,
      describe: () => this.resolved!.tail(),
    });
  }

  /** Waits until resolved lists SERVERS as LINK's DNS servers (it reads networkd's state files when they change). */
  async waitLinkServers(link: string, servers: string[]): Promise<void> {
    await poll(`resolved to list ${servers.join(" ")} for ${link}`, async () => ((await this.linkServers(link)).join(" ") === servers.join(" ") ? true : undefined), {
      timeoutMs: 10_000,
      describe: async () => `resolvectl dns: ${await this.resolvectlRun(["dns"]).catch((e) => String(e))}\n${this.resolved?.tail()}`,
    });
  }

  /** `resolvectl ARGS` in H, the resolvectl of resolved's own root. */
  resolvectlRun(args: string[], options: { timeoutMs?: number } = {}): Promise<string> {
    return this.lab.inHost(systemdArgv(this.lab.systemd, [RESOLVECTL, ...args]), options);
  }

  /** The DNS servers resolved has for LINK (`resolvectl dns LINK`). */
  async linkServers(link: string): Promise<string[]> {
    const out = await this.resolvectlRun(["dns", link]).catch(() => "");
    return (out.split(":").slice(1).join(":").trim() || "").split(/\s+/).filter(Boolean);
  }

  /** `resolvectl query -4 NAME` in H: resolved's D-Bus API, as an application using it would. */
  async resolvectl(name: string): Promise<Lookup> {
    try {
      const out = await this.resolvectlRun(["query", "--legend=no", "--cache=no", "-4", name], { timeoutMs: 30_000 });
      const match = /^\S+: (\S+)\s+-- link: (\S+)/m.exec(out);
      return match ? { ok: true, address: match[1]!, link: match[2]! } : { ok: false, error: `unreadable: ${out.trim()}` };
    } catch (err) {
      if (err instanceof CommandError) return { ok: false, error: (err.stderr || err.stdout).trim() };
      throw err;
    }
  }

  /** A plain getaddrinfo in H (`getent ahostsv4 NAME`): glibc reads /etc/resolv.conf and asks resolved's stub at 127.0.0.53. */
  async getaddrinfo(name: string, uid?: number): Promise<Lookup> {
    const argv = ["getent", "ahostsv4", name];
    try {
      const out = await this.lab.inHost(uid === undefined ? argv : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--", ...argv], { timeoutMs: 30_000 });
      const address = out.trim().split(/\s+/)[0];
      return address ? { ok: true, address } : { ok: false, error: "empty answer" };
    } catch (err) {
      if (err instanceof CommandError) return { ok: false, error: `getent exited ${err.code ?? "?"}` };
      throw err;
    }
  }

  /** Queries sent by an application straight to a resolver (lab/helpers/dns-query.mjs), as with a plain /etc/resolv.conf, without resolved. */
  async direct(queries: DirectQuery[], uid?: number): Promise<Lookup[]> {
    const argv = [process.execPath, join(HELPERS, "dns-query.mjs"), JSON.stringify(queries)];
    const out = await this.lab.inHost(uid === undefined ? argv : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--", ...argv], { timeoutMs: 30_000 });
    return JSON.parse(out);
  }

  /** `gen-networkd doctor` run in H on the spec of tunnel IFACE, as a user would: its dns check. */
  async doctorDns(iface = "wg0"): Promise<{ status: string; summary: string; details: string[]; fix?: string }> {
    const argv = [process.execPath, CLI, "doctor", join(this.lab.work, `spec-${iface}.toml`), "-o", this.lab.genDir, "--conf-dir", this.host.confDir, "--json"];
    let stdout: string;
    try {
      stdout = await this.lab.inHost(argv, { timeoutMs: 60_000 });
    } catch (error) {
      if (!(error instanceof CommandError)) throw error;
      stdout = error.stdout; // exit 1: some check failed
    }
    const check = (JSON.parse(stdout) as { checks: { id: string; status: string; summary: string; details: string[]; fix?: string }[] }).checks.find((c) => c.id === "dns");
    if (!check) throw new Error(`doctor ran no dns check:\n${stdout}`);
    return check;
  }

  /** The queries a responder got for NAME, as "udp A NAME from SOURCE". */
  queries(role: "P" | "R", name?: string): string[] {
    return (this.responders[role]?.lines ?? [])
      .filter((l) => l.startsWith("query "))
      .map((l) => l.slice("query ".length))
      .filter((l) => name === undefined || l.split(" ")[2] === name);
  }

  async destroy(): Promise<void> {
    await Promise.all([...this.procs].reverse().map((p) => p.stop(1500)));
    await this.host.destroy();
  }
}

