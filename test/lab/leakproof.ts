// The leak-proofing scenarios of issue 5 on top of the lab: one or several specs
// generated with the real CLI and applied together by the real networkd, each
// with its own userspace WireGuard tunnel to the lab's peer; namespaces attached
// behind H (a container behind a bridge with NAT, a tailnet peer); clients run as
// other uids or with a firewall mark; packet counters; and tunnels taken down,
// deleted and recreated while networkd runs.
//
// Built on Lab's public API only. Everything it starts (processes by PID,
// namespaces named after the test's PID) is removed by destroy(), and by the
// lab's exit and signal handlers when a test dies.

import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import TOML from "@iarna/toml";
import { parseUnitFile } from "../../src/unitfile.js";
import type { Section } from "../../src/model.js";
import { ADDR, ECHO_PORT, Lab, networkdParseWarnings, publicKey, wireguardFromNetdev, writeKeyFile, type ProbeResult, type ProbeSpec, type Role } from "./lab.js";
import { kernelState, linksOf, plannedState, readGenerated, type GeneratedFile, type KernelState, type PlannedState } from "./state.js";
import { poll, Proc, run, trackNamespace, untrackNamespace } from "./proc.js";

const HELPERS = fileURLToPath(new URL("./helpers/", import.meta.url));
const CLI = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));

/** One spec's tunnel in the lab. */
export interface Tunnel {
  iface: string;
  publicKey: string;
  /** The tunnel's addresses (its spec's tunnel.addresses). */
  addresses: string[];
  /** The generated WireGuard .netdev, or (manage = false) one the lab writes, as wg-quick would have. */
  netdevText: string;
  wireguard?: Proc;
}

/** Where a client runs: H itself (optionally as another uid), or an attached namespace. */
export interface ClientPlace {
  ns?: string;
  uid?: number;
}

export class LeakproofHost {
  readonly tunnels = new Map<string, Tunnel>();
  /** Directory the networkd.conf drop-ins are written to: H's networkd reads /run/systemd/networkd.conf.d. */
  confDir: string;
  private readonly procs: Proc[] = [];
  private readonly namespaces: string[] = [];

  private constructor(readonly lab: Lab) {
    this.confDir = lab.hostPath("/run/systemd/networkd.conf.d");
  }

  static async create(tag: string, options: { echoPorts?: number[] } = {}): Promise<LeakproofHost> {
    const lab = await Lab.create({ tag, host: "networkd", ...options });
    return new LeakproofHost(lab);
  }

  // ------------------------------------------------------------ generate and apply

  /**
   * Generates every spec in RAWS into the lab's directory with the real CLI (one
   * run per spec, as a user with several specs would), after pointing each at the
   * lab: its key file, the lab's peer, the peer's address as the endpoint of an
   * unmanaged tunnel.
   */
  async generate(raws: Record<string, any>[], options: { confDir?: string } = {}): Promise<void> {
    for (const input of raws) {
      const raw = structuredClone(input);
      const iface: string = raw.tunnel.interface;
      const keyFile = join(this.lab.keyDir, `${iface}.key`);
      if (!existsSync(keyFile)) await writeKeyFile(keyFile);
      if (raw.tunnel.manage !== false) {
        raw.tunnel.private_key_file = keyFile;
        raw.tunnel.peers = [{ allowed_ips: ["0.0.0.0/0", "::/0"], ...raw.tunnel.peers?.[0], public_key: this.lab.peerPublicKey, endpoint: `${ADDR.peerInet4}:${ADDR.peerPort}` }];
      } else if (raw.tunnel.endpoints) {
        raw.tunnel.endpoints = [ADDR.peerInet4];
      }
      const specPath = join(this.lab.work, `spec-${iface}.toml`);
      await writeFile(specPath, TOML.stringify(raw));
      await run([process.execPath, CLI, specPath, "-o", this.lab.genDir, "--conf-dir", options.confDir ?? this.confDir], { timeoutMs: 30_000 });
      const generated = (await this.files()).find((f) => f.name.endsWith(".netdev") && isWireguardNetdevFor(f.sections, iface));
      const netdevText =
        generated?.text ??
        // manage = false: the interface exists already (wg-quick with Table = off); the lab makes it.
        ["[NetDev]", `Name=${iface}`, "Kind=wireguard", "[WireGuard]", `PrivateKeyFile=${keyFile}`, "[WireGuardPeer]", `PublicKey=${this.lab.peerPublicKey}`, `Endpoint=${ADDR.peerInet4}:${ADDR.peerPort}`, "AllowedIPs=0.0.0.0/0", "AllowedIPs=::/0"].join("\n");
      const previous = this.tunnels.get(iface);
      this.tunnels.set(iface, {
        iface,
        publicKey: await publicKey((await readFile(keyFile, "utf8")).trim()),
        addresses: raw.tunnel.addresses,
        netdevText,
        ...(previous?.wireguard ? { wireguard: previous.wireguard } : {}),
      });
    }
  }

  /** The generated .network and .netdev files (the lab's own files live elsewhere). */
  async files(): Promise<GeneratedFile[]> {
    return readGenerated(this.lab.genDir);
  }

  /** lan0 and every link a generated .network matches (tunnels and anchors). */
  async links(): Promise<string[]> {
    return linksOf(await this.files());
  }

  /**
   * Lets every tunnel in at the peer (each its own WireGuard peer there), starts
   * networkd on the generated files, then the tunnels, and waits until networkd
   * has configured every link and the kernel holds the plan.
   */
  async start(options: { foreignRules?: string[] } = {}): Promise<void> {
    // admitHost routes one host's tunnel addresses at a time (and drops those of the host
    // admitted before): with several tunnels, every tunnel's routes are put back afterwards.
    for (const tunnel of this.tunnels.values()) await this.lab.admitHost(tunnel.publicKey, tunnel.addresses);
    for (const tunnel of this.tunnels.values()) await this.routeTunnelAtPeer(tunnel);
    await this.lab.startNetworkd();
    await this.lab.waitConfigured(["lan0"]);
    for (const iface of this.tunnels.keys()) await this.startTunnel(iface);
    await this.lab.waitConfigured(await this.links());
    await this.waitKernelMatchesPlan(options.foreignRules);
  }

  private async routeTunnelAtPeer(tunnel: Tunnel): Promise<void> {
    for (const host of tunnel.addresses.map((a) => a.split("/")[0]!)) {
      await this.lab.ip("P", ["route", "replace", host, "dev", "wg0"]);
      await this.lab.ip("I", ["route", "replace", host, "via", host.includes(":") ? ADDR.peerInet6 : ADDR.peerInet4]);
    }
  }

  /** Starts (or restarts) wireguard-go for IFACE in H and configures it from its .netdev. */
  async startTunnel(iface: string): Promise<void> {
    const tunnel = this.tunnel(iface);
    if (tunnel.wireguard?.running) await tunnel.wireguard.stop();
    await poll(`${iface} to be gone before it is recreated`, async () => ((await this.linkExists(iface)) ? undefined : true));
    const config = wireguardFromNetdev(parseUnitFile(tunnel.netdevText));
    const proc = await Proc.start(`wireguard-go-${iface}`, this.lab.hostArgv(["wireguard-go", iface]), {
      logFile: this.lab.log(`wireguard-go-${iface}`),
      env: { WG_PROCESS_FOREGROUND: "1", LOG_LEVEL: "error" },
    });
    this.procs.push(proc);
    tunnel.wireguard = proc;
    const socket = this.lab.hostPath(`/run/wireguard/${iface}.sock`);
    await poll(`${iface}'s wireguard-go socket`, () => (existsSync(socket) ? true : undefined), { timeoutMs: 5000 });
    await this.lab.inHost(["wg", "set", iface, ...config.wgArgs]);
    if (config.mtu) await this.lab.ip("H", ["link", "set", iface, "mtu", String(config.mtu)]);
  }

  /** Deletes IFACE (`ip link del`, as when wg-quick down or a crash removes it); its wireguard-go exits with it. */
  async deleteTunnel(iface: string): Promise<void> {
    await this.lab.ip("H", ["link", "del", iface]);
    await this.tunnel(iface).wireguard?.stop();
    await poll(`${iface} to be gone`, async () => ((await this.linkExists(iface)) ? undefined : true));
  }

  async linkExists(iface: string): Promise<boolean> {
    return JSON.parse(await this.lab.ip("H", ["-j", "link", "show"])).some((l: { ifname: string }) => l.ifname === iface);
  }

  tunnel(iface: string): Tunnel {
    const tunnel = this.tunnels.get(iface);
    if (!tunnel) throw new Error(`no tunnel ${iface} in this lab host`);
    return tunnel;
  }

  // ------------------------------------------------------------ plan and kernel

  async planned(): Promise<PlannedState> {
    return plannedState(await this.files());
  }

  kernel(tables: string[]): Promise<KernelState> {
    return kernelState(this.lab, tables);
  }

  /** What differs between the plan (plus FOREIGN rules that must also be there) and the kernel; "" when equal. */
  async planDiff(foreign: string[] = [], extraTables: string[] = []): Promise<string> {
    const plan = await this.planned();
    const kernel = await this.kernel([...new Set([...plan.tables, ...extraTables])]);
    return [...setDiff([...plan.rules, ...foreign].sort(), kernel.rules), ...setDiff(plan.routes, kernel.routes)].join("\n");
  }

  async waitKernelMatchesPlan(foreign: string[] = [], extraTables: string[] = []): Promise<void> {
    await poll("the kernel to hold exactly the planned rules and routes", async () => ((await this.planDiff(foreign, extraTables)) === "" ? true : undefined), {
      timeoutMs: 10_000,
      describe: async () => `${await this.planDiff(foreign, extraTables)}\nnetworkd:\n${this.lab.networkd?.tail()}`,
    });
  }

  /** networkd's complaints: a scratch load of the whole output, and the live host's since line FROM. */
  async networkdWarnings(from = 0): Promise<string[]> {
    const scratch = await networkdParseWarnings(this.lab.genDir, `${this.lab.options.tag}s`);
    return [...scratch.warnings.map((l) => `scratch: ${l}`), ...this.lab.networkdWarnings(from).map((l) => `host: ${l}`)];
  }

  /** Regenerates from edited specs and runs `networkctl reload`, as a user would; waits for the new plan. */
  async regenerateAndReload(raws: Record<string, any>[], options: { foreignRules?: string[] } = {}): Promise<void> {
    const old = await this.planned();
    await this.generate(raws);
    await this.lab.syncOverlay();
    await this.lab.networkctl(["reload"]);
    await this.lab.waitConfigured(await this.links());
    await this.waitKernelMatchesPlan(options.foreignRules, old.tables);
  }

  /** Stops networkd and starts it again on the same files (as `systemctl restart systemd-networkd`). */
  async restartNetworkd(options: { foreignRules?: string[] } = {}): Promise<void> {
    await this.lab.stopNetworkd();
    await this.lab.startNetworkd();
    await this.lab.waitConfigured(await this.links());
    await this.waitKernelMatchesPlan(options.foreignRules);
  }

  // ------------------------------------------------------------ attached namespaces

  /**
   * A namespace behind a veth on H, named after the lab (and so the test's PID).
   * H's end is HOSTLINK, optionally enslaved to a bridge BRIDGE that carries
   * HOSTADDRESS; the namespace's end is eth0 with ADDRESS and the routes ROUTES
   * (`ip route add` arguments). An echo server answers on ECHO_PORT when ECHO.
   * networkd leaves these links alone: no .network matches them.
   */
  async attachNamespace(name: string, o: { hostLink: string; bridge?: string; hostAddress: string; address: string; routes: string[][]; echo?: boolean }): Promise<string> {
    const ns = `${this.lab.ns.H.replace(/-H$/, "")}-${name}`;
    await run(["ip", "netns", "add", ns]);
    trackNamespace(ns);
    this.namespaces.push(ns);
    const h = (args: string[]) => this.lab.ip("H", args);
    await h(["link", "add", o.hostLink, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    if (o.bridge) {
      await h(["link", "add", o.bridge, "type", "bridge", "forward_delay", "0"]);
      await h(["link", "set", o.hostLink, "master", o.bridge]);
      await h(["address", "add", o.hostAddress, "dev", o.bridge]);
      await h(["link", "set", o.bridge, "up"]);
    } else {
      await h(["address", "add", o.hostAddress, "dev", o.hostLink]);
    }
    await h(["link", "set", o.hostLink, "up"]);
    const n = (args: string[]) => run(["ip", "-n", ns, ...args]);
    await n(["link", "set", "lo", "up"]);
    await n(["address", "add", o.address, "dev", "eth0"]);
    await n(["link", "set", "eth0", "up"]);
    for (const route of o.routes) await n(["route", "add", ...route]);
    if (o.echo) {
      this.procs.push(
        await Proc.start(`echo-${name}`, ["ip", "netns", "exec", ns, process.execPath, join(HELPERS, "echo-server.mjs"), String(ECHO_PORT)], {
          logFile: this.lab.log(`echo-${name}`),
          ready: /^ready$/,
        }),
      );
    }
    return ns;
  }

  /**
   * A container as docker makes one: namespace C behind bridge ctr0 (172.17.0.1/16)
   * on H, default route via H, H forwarding and masquerading its traffic (nft); an echo
   * server in it when ECHO.
   */
  async addContainer(options: { echo?: boolean } = {}): Promise<string> {
    const ns = await this.attachNamespace("C", { hostLink: "vethc", bridge: "ctr0", hostAddress: "172.17.0.1/16", address: "172.17.0.2/16", routes: [["default", "via", "172.17.0.1"]], ...options });
    await run(["ip", "netns", "exec", this.lab.ns.H, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    await this.nft("H", "ip", "labnat", ["chain post { type nat hook postrouting priority srcnat; ip saddr 172.17.0.0/16 oifname != \"ctr0\" masquerade; }"]);
    return ns;
  }

  /**
   * An echo server in H itself (lab/helpers/echo-server.mjs) on PORTS: on the wildcard
   * addresses, or only on BIND. Stopped with the host.
   */
  async startHostServer(name: string, ports: number[], bind: string[] = []): Promise<void> {
    const argv = this.lab.hostArgv([process.execPath, join(HELPERS, "echo-server.mjs"), ...ports.map(String), ...bind.map((b) => `--bind=${b}`)]);
    this.procs.push(await Proc.start(`echo-H-${name}`, argv, { logFile: this.lab.log(`echo-H-${name}`), ready: /^ready$/ }));
  }

  // ------------------------------------------------------------ nftables

  /** Creates table FAMILY NAME in ROLE's namespace with BODY (nft statements); it goes with the namespace. */
  async nft(role: Role, family: string, name: string, body: string[]): Promise<void> {
    await run(["ip", "netns", "exec", this.lab.ns[role], "nft", "-f", "-"], { input: `table ${family} ${name} {\n${body.join("\n")}\n}\n` });
  }

  /** A packet counter in ROLE: counts packets matching any of MATCHES (nft expressions) at HOOK. Returns a reader. */
  async countPackets(role: Role, name: string, hook: "output" | "postrouting" | "input" | "prerouting" | "forward", matches: string[]): Promise<() => Promise<number>> {
    await this.nft(role, "inet", name, ["counter seen { }", `chain c { type filter hook ${hook} priority 0; policy accept; ${matches.map((m) => `${m} counter name seen;`).join(" ")} }`]);
    return async () => {
      const json = JSON.parse((await run(["ip", "netns", "exec", this.lab.ns[role], "nft", "-j", "list", "counter", "inet", name, "seen"])).stdout);
      return json.nftables.find((x: { counter?: { packets: number } }) => x.counter)!.counter.packets;
    };
  }

  // ------------------------------------------------------------ clients

  /** TCP/UDP probes (lab/helpers/probe.mjs) from PLACE; all in one process. */
  async probe(probes: ProbeSpec[], place: ClientPlace = {}): Promise<ProbeResult[]> {
    const list = probes.map((p) => ({ port: ECHO_PORT, timeoutMs: 2000, ...p }));
    const argv = this.clientArgv(place, [process.execPath, join(HELPERS, "probe.mjs"), JSON.stringify(list)]);
    return JSON.parse((await run(argv, { timeoutMs: 30_000 })).stdout);
  }

  /** One TCP connection from H from a socket with SO_MARK = MARK (lab/helpers/mark-probe.pl). */
  async probeMarked(host: string, mark: number, port = ECHO_PORT): Promise<{ ok: boolean; saw?: string; error?: string }> {
    const argv = this.clientArgv({}, ["perl", join(HELPERS, "mark-probe.pl"), host, String(port), String(mark), "3"]);
    return JSON.parse((await run(argv, { timeoutMs: 10_000 })).stdout);
  }

  private clientArgv(place: ClientPlace, argv: string[]): string[] {
    const asUser = place.uid === undefined ? argv : ["setpriv", `--reuid=${place.uid}`, `--regid=${place.uid}`, "--clear-groups", "--", ...argv];
    return place.ns ? ["ip", "netns", "exec", place.ns, ...asUser] : this.lab.hostArgv(asUser);
  }

  // ------------------------------------------------------------ teardown

  async destroy(): Promise<void> {
    await Promise.all([...this.procs].reverse().map((p) => p.stop(1500)));
    for (const ns of this.namespaces) {
      await run(["ip", "netns", "del", ns]).catch(() => {});
      untrackNamespace(ns);
    }
    await this.lab.destroy();
  }
}

/**
 * Awaits several lab setups started in parallel. When one fails, the others that
 * succeeded are destroyed before the error is rethrown: a host left running keeps
 * the test process alive (and its namespaces) after the suite has failed.
 */
export async function setUpAll<T>(setups: Promise<T>[], destroy: (value: T) => Promise<void>): Promise<T[]> {
  const settled = await Promise.allSettled(setups);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (!failed) return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
  await Promise.all(settled.flatMap((s) => (s.status === "fulfilled" ? [destroy(s.value)] : [])));
  throw failed.reason;
}

function isWireguardNetdevFor(sections: Section[], iface: string): boolean {
  const netdev = sections.find((s) => s.name === "NetDev");
  const value = (key: string) => netdev?.entries.find((e) => e.key === key)?.value;
  return value("Name") === iface && value("Kind") === "wireguard";
}

function setDiff(expected: string[], actual: string[]): string[] {
  return [...expected.filter((x) => !actual.includes(x)).map((x) => `  missing: ${x}`), ...actual.filter((x) => !expected.includes(x)).map((x) => `  extra:   ${x}`)];
}
