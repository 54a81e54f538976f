// The network-namespace lab: a throw-away host made of network namespaces, the
// real systemd-networkd applying a directory of files to it, a userspace
// WireGuard tunnel to a peer, and servers that tell which path a flow took.
//
//                     LAN 192.168.50.0/24              "internet" 198.51.100.0/24
//                         2001:db8:50::/64                         2001:db8:100::/64
//   ┌──────────────┐                 ┌────────────────┐                   ┌──────────────────┐
//   │ H  host under│ lan0 .2 ─── h0 ─┤ R  LAN router  ├─ p0 ──── inet0 .7 │ P  VPN peer      │
//   │ test         │                 │ br-lan .1      │                   │ wg0 10.253.0.1   │
//   │ networkd,    │ wg0 10.253.0.2  │ br-inet .1     ├─ i0 ─┐            │ forwards to I    │
//   │ wireguard-go │ ═══ WireGuard over the LAN and R ═══════│════════════╡ wireguard-go     │
//   └──────────────┘                 └───────┬────────┘      │            └──────────────────┘
//                                            │ l0            │ inet0 .80
//                                  ┌─────────┴──────┐   ┌────┴──────────────────────────────┐
//                                  │ L  LAN host .20│   │ I  "internet" server              │
//                                  │ TCP+UDP echo   │   │ 203.0.113.80, 2001:db8:99::80     │
//                                  └────────────────┘   │ TCP+UDP echo of the source seen   │
//                                                       └───────────────────────────────────┘
//
// No namespace has a link to the machine's own (root) namespace: every veth is
// created directly between two lab namespaces, so no packet can leave the lab.
// I routes the LAN back through R and the tunnel addresses back through P, and
// nothing else: a flow that took the wrong path gets no answer.

import { execFile } from "node:child_process";
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseUnitFile } from "../../src/unitfile.js";
import type { Section } from "../../src/model.js";
import {
  NS_PREFIX,
  poll,
  Proc,
  reapStaleNamespaces,
  run,
  installCleanupHandlers,
  trackDir,
  trackNamespace,
  untrackDir,
  untrackNamespace,
  CommandError,
} from "./proc.js";
import { labSystemd, SYSTEMD_BINARIES, systemdArgv, type LabSystemd } from "./systemd.js";

const HELPERS = fileURLToPath(new URL("./helpers/", import.meta.url));
/** In H: where the stand-in for PID 1's file descriptor store keeps its sockets (helpers/fdstore.py). */
const FDSTORE_DIR = "/run/lab-fdstore";

/** Addresses of the lab topology; tests and expectations refer to these names. */
export const ADDR = {
  lanPrefix4: "192.168.50.0/24",
  lanPrefix6: "2001:db8:50::/64",
  inetPrefix4: "198.51.100.0/24",
  inetPrefix6: "2001:db8:100::/64",
  routerLan4: "192.168.50.1",
  routerLan6: "2001:db8:50::1",
  routerInet4: "198.51.100.1",
  routerInet6: "2001:db8:100::1",
  hostLan4: "192.168.50.2",
  hostLan6: "2001:db8:50::2",
  lanHost4: "192.168.50.20",
  lanHost6: "2001:db8:50::20",
  peerInet4: "198.51.100.7",
  peerInet6: "2001:db8:100::7",
  peerTunnel4: "10.253.0.1/24",
  peerTunnel6: "fd00:253::1/64",
  peerPort: 51820,
  serverInet4: "198.51.100.80",
  serverInet6: "2001:db8:100::80",
  server4: "203.0.113.80",
  server6: "2001:db8:99::80",
} as const;

/** The port every echo server listens on (TCP and UDP, both families). */
export const ECHO_PORT = 7777;

export type Role = "H" | "R" | "L" | "P" | "I";

export interface LabOptions {
  /** Short name of the case; part of the namespace names, so parallel cases must use distinct tags. */
  tag: string;
  /**
   * "networkd": H's LAN link is configured by networkd from a lab-owned .network (networkd
   * removes foreign routes, so the lab cannot add them by hand). "manual": `ip` configures it
   * and no networkd runs (the blog's setup).
   */
  host: "networkd" | "manual";
  /** Extra echo ports on L and I (ECHO_PORT is always there). */
  echoPorts?: number[];
  /** Kernel settings for H's namespace, set before networkd starts, e.g. "net.ipv6.route.max_size=4096" (the default of kernels before 6.3). */
  hostSysctls?: string[];
}

export interface RouteDecision {
  /** tunnel: leaves through the tunnel interface; direct: any other interface (or local); unreachable: the kernel refused. */
  verdict: "tunnel" | "direct" | "unreachable";
  dev?: string;
  table?: string;
  type?: string;
  error?: string;
  raw?: unknown;
}

export interface ProbeSpec {
  proto: "tcp" | "udp";
  host: string;
  port?: number;
  timeoutMs?: number;
  /** Bind the client socket to this address first (a program's own choice of source). */
  localAddress?: string;
}

export interface ProbeResult {
  ok: boolean;
  /** The source address the server saw. */
  saw?: string;
  /** UDP: the source address of the answer. */
  from?: string;
  error?: string;
  ms: number;
}

export interface KernelRule {
  priority: number;
  family: "ipv4" | "ipv6";
  [key: string]: unknown;
}

/** Lines networkd prints in normal operation; anything else it prints is a warning. */
const ROUTINE = [
  /^(\S+: )?(Link UP|Link DOWN|Gained carrier|Lost carrier|Gained IPv6LL|Lost IPv6LL)$/,
  // 257 and later name the drop-ins too: "… .network (dropins: /etc/…/99-lab.conf)."
  /^\S+: (Re)?[Cc]onfiguring with \/\S+\.network( \(dropins: [^)]*\))?\.$/,
  /^Enumeration completed$/,
  /^\S+: netdev ready$/,
  /^\S+: Link is not managed by us$/,
  /^\S+: Unmanaged link$/,
  /^# /,
];

export function isRoutine(line: string): boolean {
  return line.trim() === "" || ROUTINE.some((re) => re.test(line));
}

let labCounter = 0;

export class Lab {
  readonly ns: Record<Role, string>;
  readonly work: string;
  /** The directory networkd reads as /run/systemd/network in H: the generated files live here. */
  readonly genDir: string;
  /** Lab-owned files networkd reads as /etc/systemd/network in H: LAN link, drop-ins, masks. */
  readonly etcDir: string;
  readonly keyDir: string;
  readonly logDir: string;
  /** The systemd (networkd, networkctl, dbus-daemon) H runs: GEN_NETWORKD_LAB_SYSTEMD. */
  readonly systemd: LabSystemd = labSystemd();
  private procs: Proc[] = [];
  private hostHolder?: Proc;
  private peerHolder?: Proc;
  networkd?: Proc;
  private dbus?: Proc;
  private fdstore?: Proc;
  private hostWireguard?: Proc;
  peerPublicKey = "";
  private peerPrivateKeyFile = "";
  private tunnelRoutes: string[] = [];
  /** Timings (ms) of the steps, for reports. */
  readonly timings: Record<string, number> = {};

  private constructor(
    readonly options: LabOptions,
    work: string,
  ) {
    const id = `${NS_PREFIX}${process.pid}-${options.tag}-${labCounter++}`;
    this.ns = { H: `${id}-H`, R: `${id}-R`, L: `${id}-L`, P: `${id}-P`, I: `${id}-I` };
    this.work = work;
    this.genDir = join(work, "gen");
    this.etcDir = join(work, "etc");
    this.keyDir = join(work, "keys");
    this.logDir = join(work, "logs");
  }

  /** Builds the topology (all namespaces, links, routers, servers, the WireGuard peer). */
  static async create(options: LabOptions): Promise<Lab> {
    installCleanupHandlers();
    reapStaleNamespaces();
    const started = Date.now();
    const work = await mkdtemp(join(tmpdir(), `gen-networkd-lab-${options.tag}-`));
    trackDir(work);
    // networkd drops to the systemd-network user: it must be able to walk into the lab's files.
    await chmod(work, 0o755);
    const lab = new Lab(options, work);
    for (const dir of [lab.genDir, join(lab.genDir, "networkd.conf.d"), lab.etcDir, lab.keyDir, lab.logDir]) {
      await mkdir(dir, { recursive: true, mode: 0o755 });
      await chmod(dir, 0o755);
    }
    try {
      await lab.buildTopology();
    } catch (err) {
      await lab.destroy();
      throw err;
    }
    lab.timings.topology = Date.now() - started;
    return lab;
  }

  log(name: string): string {
    return join(this.logDir, `${name}.log`);
  }

  /** `ip -n NS ARGS`, JSON-parsed when -j is among ARGS. */
  async ip(role: Role, args: string[]): Promise<string> {
    return (await run(["ip", "-n", this.ns[role], ...args])).stdout;
  }

  private async batch(role: Role, commands: string[]): Promise<void> {
    await run(["ip", "-n", this.ns[role], "-batch", "-"], { input: commands.join("\n") + "\n" });
  }

  /** Sets "a.b.c=v" kernel settings inside ROLE's namespace (through /proc/sys, no procps needed). */
  private async sysctl(role: Role, settings: string[]): Promise<void> {
    const script = settings
      .map((kv) => {
        const [key, value] = kv.split("=");
        return `printf %s ${value} > /proc/sys/${key!.replace(/\./g, "/")}`;
      })
      .join(" && ");
    await run(["ip", "netns", "exec", this.ns[role], "sh", "-c", script]);
  }

  private async buildTopology(): Promise<void> {
    const { ns } = this;
    for (const role of Object.keys(ns) as Role[]) {
      await run(["ip", "netns", "add", ns[role]]);
      trackNamespace(ns[role]);
    }
    // No IPv6 duplicate address detection anywhere (a tentative address delays neighbour
    // discovery by a second); routers forward; H gets systemd's default loose reverse-path
    // filter (50-default.conf).
    const noDad = ["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"];
    const forward = ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"];
    await Promise.all([
      this.sysctl("R", [...noDad, ...forward]),
      this.sysctl("P", [...noDad, ...forward]),
      this.sysctl("L", noDad),
      this.sysctl("I", noDad),
      this.sysctl("H", [...noDad, "net.ipv4.conf.all.rp_filter=2", "net.ipv4.conf.default.rp_filter=2", ...(this.options.hostSysctls ?? [])]),
    ]);
    // Links, created between lab namespaces only.
    await this.batch("R", [
      "link set lo up",
      "link add name br-lan type bridge forward_delay 0",
      "link add name br-inet type bridge forward_delay 0",
      `link add name h0 type veth peer name lan0 netns ${ns.H}`,
      `link add name l0 type veth peer name eth0 netns ${ns.L}`,
      `link add name p0 type veth peer name inet0 netns ${ns.P}`,
      `link add name i0 type veth peer name inet0 netns ${ns.I}`,
      "link set h0 master br-lan",
      "link set l0 master br-lan",
      "link set p0 master br-inet",
      "link set i0 master br-inet",
      `address add ${ADDR.routerLan4}/24 dev br-lan`,
      `address add ${ADDR.routerLan6}/64 dev br-lan nodad`,
      `address add ${ADDR.routerInet4}/24 dev br-inet`,
      `address add ${ADDR.routerInet6}/64 dev br-inet nodad`,
      "link set br-lan up",
      "link set br-inet up",
      "link set h0 up",
      "link set l0 up",
      "link set p0 up",
      "link set i0 up",
      `route add ${ADDR.server4}/32 via ${ADDR.serverInet4}`,
      `route add ${ADDR.server6}/128 via ${ADDR.serverInet6}`,
    ]);
    await Promise.all([
      this.batch("L", [
        "link set lo up",
        `address add ${ADDR.lanHost4}/24 dev eth0`,
        `address add ${ADDR.lanHost6}/64 dev eth0 nodad`,
        "link set eth0 up",
      ]),
      this.batch("I", [
        "link set lo up",
        `address add ${ADDR.serverInet4}/24 dev inet0`,
        `address add ${ADDR.serverInet6}/64 dev inet0 nodad`,
        `address add ${ADDR.server4}/32 dev inet0`,
        `address add ${ADDR.server6}/128 dev inet0 nodad`,
        "link set inet0 up",
        // Back to the LAN through R only; the tunnel addresses are routed through P once known.
        `route add ${ADDR.lanPrefix4} via ${ADDR.routerInet4}`,
        `route add ${ADDR.lanPrefix6} via ${ADDR.routerInet6}`,
      ]),
      this.batch("P", [
        "link set lo up",
        `address add ${ADDR.peerInet4}/24 dev inet0`,
        `address add ${ADDR.peerInet6}/64 dev inet0 nodad`,
        "link set inet0 up",
        `route add ${ADDR.lanPrefix4} via ${ADDR.routerInet4}`,
        `route add ${ADDR.lanPrefix6} via ${ADDR.routerInet6}`,
        `route add ${ADDR.server4}/32 via ${ADDR.serverInet4}`,
        `route add ${ADDR.server6}/128 via ${ADDR.serverInet6}`,
      ]),
      this.batch("H", ["link set lo up"]),
    ]);
    const ports = [ECHO_PORT, ...(this.options.echoPorts ?? [])].map(String);
    const echo = (role: Role) =>
      this.startProc(`echo-${role}`, ["ip", "netns", "exec", this.ns[role], process.execPath, join(HELPERS, "echo-server.mjs"), ...ports], {
        ready: /^ready$/,
      });
    await Promise.all([echo("L"), echo("I"), this.startPeer(), this.startHostHolder()]);
    if (this.options.host === "manual") {
      await this.batch("H", [
        `address add ${ADDR.hostLan4}/24 dev lan0`,
        `address add ${ADDR.hostLan6}/64 dev lan0 nodad`,
        "link set lan0 up",
        `route add default via ${ADDR.routerLan4}`,
        `route add default via ${ADDR.routerLan6}`,
      ]);
    } else {
      await writeFile(
        join(this.etcDir, "10-lab-lan0.network"),
        [
          "# Lab-owned: H's LAN uplink (networkd removes routes it did not configure, so networkd configures it).",
          "[Match]",
          "Name=lan0",
          "",
          "[Network]",
          `Address=${ADDR.hostLan4}/24`,
          `Address=${ADDR.hostLan6}/64`,
          `Gateway=${ADDR.routerLan4}`,
          `Gateway=${ADDR.routerLan6}`,
          "LinkLocalAddressing=no",
          "IPv6AcceptRA=no",
          "IPv6DuplicateAddressDetection=0",
          "",
        ].join("\n"),
      );
    }
  }

  private async startProc(
    name: string,
    argv: string[],
    options: { env?: NodeJS.ProcessEnv; ready?: RegExp; timeoutMs?: number } = {},
  ): Promise<Proc> {
    const proc = await Proc.start(name, argv, { ...options, logFile: this.log(name) });
    this.procs.push(proc);
    return proc;
  }

  /**
   * A process that holds H's private mount namespace: networkd's directories, a
   * private D-Bus and WireGuard control socket directory, and a read-only /sys (so
   * networkd does not wait for udev). networkd, dbus-daemon, wireguard-go, wg and
   * networkctl are then started inside it with nsenter. /run and /etc/systemd are
   * fresh tmpfs there, so the mount points are made in them, never on the machine.
   * With a chroot's systemd, the chroot sees the same /run and /etc/systemd
   * (chrootMounts), and `networkctl` in H is the chroot's.
   */
  private async startHostHolder(): Promise<void> {
    const script = [
      "set -e",
      "mount -t tmpfs tmpfs /run",
      "mount -t tmpfs tmpfs /etc/systemd",
      `mkdir -p /run/systemd/network /etc/systemd/network /etc/systemd/networkd.conf.d /run/dbus /run/wireguard ${FDSTORE_DIR}`,
      ...SOCKET_DIRS,
      `mount --bind ${this.genDir} /run/systemd/network`,
      // The generated networkd.conf drop-ins, where the README tells users to install them.
      `mount --bind ${this.genDir}/networkd.conf.d /etc/systemd/networkd.conf.d`,
      `mount --bind ${this.etcDir} /etc/systemd/network`,
      "umount /sys",
      "mount -t sysfs -o ro none /sys",
      ...(await this.chrootNetworkctl()),
      ...chrootMounts(this.systemd),
      "echo ready",
      "exec sleep infinity",
    ].join("\n");
    this.hostHolder = await this.startProc("holder-H", [
      "ip", "netns", "exec", this.ns.H, "unshare", "--mount", "--propagation", "private", "sh", "-c", script,
    ], { ready: /^ready$/ });
  }

  /**
   * With a chroot's systemd: mount lines that put a wrapper over the machine's networkctl in
   * H, so whatever runs `networkctl` there (the lab, `gen-networkd apply`, doctor's fixes)
   * talks the chroot's networkctl to the chroot's networkd.
   */
  private async chrootNetworkctl(): Promise<string[]> {
    if (this.systemd.root === "/") return [];
    const wrapper = join(this.work, "networkctl");
    await writeFile(wrapper, `#!/bin/sh\nexec chroot ${this.systemd.root} ${SYSTEMD_BINARIES.networkctl} "$@"\n`, { mode: 0o755 });
    return [`mount --bind ${wrapper} $(readlink -f $(command -v networkctl))`];
  }

  /** Runs ARGV inside H (its network and private mount namespace). */
  hostArgv(argv: string[]): string[] {
    return ["nsenter", "-t", String(this.hostHolder!.pid), "-m", "-n", "--", ...argv];
  }

  async inHost(argv: string[], options: { timeoutMs?: number } = {}): Promise<string> {
    return (await run(this.hostArgv(argv), options)).stdout;
  }

  /** A path inside H's private mount namespace, readable from the test process. */
  hostPath(path: string): string {
    return `/proc/${this.hostHolder!.pid}/root${path}`;
  }

  // ---------------------------------------------------------------- the VPN peer

  private async startPeer(): Promise<void> {
    const script = ["set -e", "mount -t tmpfs tmpfs /run", "mkdir -p /run/wireguard", "echo ready", "exec sleep infinity"].join(
      "\n",
    );
    this.peerHolder = await this.startProc("holder-P", [
      "ip", "netns", "exec", this.ns.P, "unshare", "--mount", "--propagation", "private", "sh", "-c", script,
    ], { ready: /^ready$/ });
    const inPeer = (argv: string[]) => ["nsenter", "-t", String(this.peerHolder!.pid), "-m", "-n", "--", ...argv];
    this.peerPrivateKeyFile = join(this.keyDir, "peer.key");
    const key = await genKey();
    await writeFile(this.peerPrivateKeyFile, key + "\n", { mode: 0o600 });
    this.peerPublicKey = await publicKey(key);
    await this.startProc("wireguard-go-P", inPeer(["wireguard-go", "wg0"]), {
      env: { WG_PROCESS_FOREGROUND: "1", LOG_LEVEL: "error" },
    });
    const peerSocket = `/proc/${this.peerHolder!.pid}/root/run/wireguard/wg0.sock`;
    await poll("the peer's wireguard-go socket", () => (existsSync(peerSocket) ? true : undefined), { timeoutMs: 5000 });
    await run(inPeer(["wg", "set", "wg0", "private-key", this.peerPrivateKeyFile, "listen-port", String(ADDR.peerPort)]));
    await this.batch("P", [
      `address add ${ADDR.peerTunnel4} dev wg0`,
      `address add ${ADDR.peerTunnel6} dev wg0 nodad`,
      "link set wg0 up",
    ]);
  }

  /** Lets H (public key HOSTKEY, tunnel addresses ADDRESSES) in at the peer, and routes those addresses back through P. */
  async admitHost(hostKey: string, addresses: string[]): Promise<void> {
    const hosts = addresses.map((a) => a.split("/")[0]!);
    const inPeer = ["nsenter", "-t", String(this.peerHolder!.pid), "-m", "-n", "--"];
    await run([
      ...inPeer, "wg", "set", "wg0", "peer", hostKey, "allowed-ips",
      hosts.map((h) => (h.includes(":") ? `${h}/128` : `${h}/32`)).join(","),
    ]);
    for (const old of this.tunnelRoutes) {
      await this.ip("P", ["route", "del", old, "dev", "wg0"]).catch(() => {});
      await this.ip("I", ["route", "del", old]).catch(() => {});
    }
    this.tunnelRoutes = hosts;
    for (const host of hosts) {
      const v6 = host.includes(":");
      await this.ip("P", ["route", "replace", host, "dev", "wg0"]);
      await this.ip("I", ["route", "replace", host, "via", v6 ? ADDR.peerInet6 : ADDR.peerInet4]);
    }
  }

  // --------------------------------------------------------- H's WireGuard link

  /**
   * Starts wireguard-go as H's tunnel and configures it from a generated .netdev,
   * read with the project's own parser (networkd cannot configure a userspace
   * device: it refuses a Kind=wireguard .netdev for an existing TUN link).
   */
  async startHostWireguard(netdevText: string): Promise<{ iface: string; publicKey: string }> {
    const config = wireguardFromNetdev(parseUnitFile(netdevText));
    if (this.hostWireguard?.running) await this.hostWireguard.stop();
    await poll(`${config.iface} gone`, async () => ((await this.ip("H", ["-j", "link"])).includes(`"${config.iface}"`) ? undefined : true));
    this.hostWireguard = await this.startProc("wireguard-go-H", this.hostArgv(["wireguard-go", config.iface]), {
      env: { WG_PROCESS_FOREGROUND: "1", LOG_LEVEL: "error" },
    });
    const socket = this.hostPath(`/run/wireguard/${config.iface}.sock`);
    await poll("H's wireguard-go socket", () => (existsSync(socket) ? true : undefined), { timeoutMs: 5000 });
    await this.inHost(["wg", "set", config.iface, ...config.wgArgs]);
    if (config.mtu) await this.ip("H", ["link", "set", config.iface, "mtu", String(config.mtu)]);
    const key = (await readFile(config.privateKeyFile, "utf8")).trim();
    return { iface: config.iface, publicKey: await publicKey(key) };
  }

  /**
   * Stands in for networkd 257 and later updating H's existing tunnel from a changed .netdev
   * on reload (networkd cannot configure wireguard-go): the same link gets the new settings,
   * and its peers are replaced, as networkd does (systemd issue 38196), so their sessions restart.
   */
  async updateHostWireguard(netdevText: string): Promise<void> {
    const config = wireguardFromNetdev(parseUnitFile(netdevText));
    const peers = (await this.wgShow(config.iface)).split("\n").slice(1).filter(Boolean).map((line) => line.split("\t")[0]!);
    await this.inHost(["wg", "set", config.iface, ...peers.flatMap((peer) => ["peer", peer, "remove"])]);
    await this.inHost(["wg", "set", config.iface, ...config.wgArgs]);
    if (config.mtu) await this.ip("H", ["link", "set", config.iface, "mtu", String(config.mtu)]);
  }

  async wgShow(iface: string): Promise<string> {
    return this.inHost(["wg", "show", iface, "dump"]);
  }

  // ------------------------------------------------------------------- networkd

  /**
   * Makes the generated directory usable by H's networkd: masks every WireGuard .netdev (a
   * /dev/null symlink of the same name in the higher-priority /etc directory), and
   * adds a lab-only drop-in with LinkLocalAddressing=no to every generated .network
   * (otherwise networkd waits ~12 s for router advertisements on the TUN link).
   */
  async syncOverlay(): Promise<void> {
    for (const name of await readdir(this.etcDir)) {
      if (name.startsWith("10-lab-")) continue;
      await rm(join(this.etcDir, name), { recursive: true, force: true });
    }
    for (const name of await readdir(this.genDir)) {
      if (name.endsWith(".netdev") && isWireguardNetdev(await readFile(join(this.genDir, name), "utf8"))) {
        await symlink("/dev/null", join(this.etcDir, name));
      }
      if (name.endsWith(".network")) {
        const dropIns = join(this.etcDir, `${name}.d`);
        await mkdir(dropIns, { mode: 0o755 });
        await writeFile(
          join(dropIns, "99-lab.conf"),
          "# Lab-only: a TUN link has no use for IPv6 link-local; without this networkd waits for RAs.\n[Network]\nLinkLocalAddressing=no\n",
        );
      }
    }
  }

  /** Starts a private system D-Bus (for networkctl) and networkd inside H. */
  /** Starts networkd in H; TIMEOUT_MS bounds its start (reading a few hundred thousand routes takes 252 a while). */
  async startNetworkd(timeoutMs = 30_000): Promise<void> {
    if (!this.dbus?.running) {
      this.dbus = await this.startProc(
        "dbus-H",
        this.hostArgv(systemdArgv(this.systemd, [SYSTEMD_BINARIES.dbusDaemon, "--system", "--nofork", "--nopidfile", "--nosyslog"])),
      );
      await poll("H's private D-Bus socket", () => (existsSync(this.hostPath("/run/dbus/system_bus_socket")) ? true : undefined), {
        timeoutMs: 5000,
      });
    }
    // As PID 1 would, keep what networkd stores when it stops (257 and later: its serialized
    // state) and hand it to the next start, so a restart here is a restart as on a machine.
    if (!this.fdstore?.running) {
      this.fdstore = await this.startProc("fdstore-H", this.hostArgv(["python3", join(HELPERS, "fdstore.py"), "serve", FDSTORE_DIR]), { ready: /^ready$/ });
    }
    await this.syncOverlay();
    // Written once networkd has enumerated the links and saved their state (its "Enumeration
    // completed" line is info in 252, debug since 257); the one of an earlier run goes first.
    await rm(this.hostPath(NETWORKD_STATE), { force: true });
    const networkd = systemdArgv(this.systemd, [SYSTEMD_BINARIES.networkd]);
    this.networkd = await this.startProc("networkd-H", this.hostArgv(["python3", join(HELPERS, "fdstore.py"), "exec", FDSTORE_DIR, ...networkd]), { env: { SYSTEMD_LOG_LEVEL: "info" } });
    await waitStarted(this.networkd, this.hostPath(NETWORKD_STATE), timeoutMs);
  }

  async stopNetworkd(): Promise<void> {
    await this.networkd?.stop();
  }

  /**
   * As a reboot does: PID 1's file descriptor store starts empty, so the next networkd
   * (257 and later) starts without the state it serialized when it stopped.
   */
  async emptyFdstore(): Promise<void> {
    await this.fdstore?.stop();
    this.fdstore = undefined;
  }

  /** What the stand-in for PID 1's file descriptor store did so far ("stored 1 fd(s) named …", "handed out 1 fd(s)"). */
  fdstoreEvents(): string[] {
    return (this.fdstore?.lines ?? []).filter((l) => /^(stored|handed out) /.test(l));
  }

  async networkctl(args: string[]): Promise<string> {
    return this.inHost(["networkctl", ...args], { timeoutMs: 20_000 });
  }

  /** networkd's state of LINK (its link state file), or undefined when it has none. */
  async linkState(link: string): Promise<Record<string, string> | undefined> {
    return (await this.linkStates([link]))[0];
  }

  /** networkd's states of LINKS, in order, from one `ip link` call (a link without state file: undefined). */
  async linkStates(links: readonly string[]): Promise<(Record<string, string> | undefined)[]> {
    const indexes = new Map((JSON.parse(await this.ip("H", ["-j", "link", "show"])) as { ifname: string; ifindex: number }[]).map((l) => [l.ifname, l.ifindex]));
    return Promise.all(
      links.map(async (link) => {
        const index = indexes.get(link);
        if (index === undefined) return undefined;
        try {
          const text = await readFile(this.hostPath(`/run/systemd/netif/links/${index}`), "utf8");
          return Object.fromEntries(
            text
              .split("\n")
              .filter((l) => l.includes("="))
              .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
          );
        } catch {
          return undefined;
        }
      }),
    );
  }

  /**
   * Polls networkd's link state files until every link in LINKS is "configured". Long waits
   * (big route sets) poll less often, so that the lab does not take the CPU networkd needs.
   */
  async waitConfigured(links: string[], timeoutMs = 15_000): Promise<void> {
    const started = Date.now();
    await poll(
      `networkd to configure ${links.join(", ")}`,
      async () => {
        const states = await this.linkStates(links);
        const failed = states.findIndex((s) => s?.ADMIN_STATE === "failed");
        if (failed >= 0) throw new Error(`networkd failed to configure ${links[failed]}:\n${this.networkd?.tail()}`);
        return states.every((s) => s?.ADMIN_STATE === "configured") ? true : undefined;
      },
      {
        timeoutMs,
        intervalMs: timeoutMs > 60_000 ? 1000 : 50,
        describe: async () => {
          const states = await this.linkStates(links);
          return `${links.map((l, i) => `${l}: ${states[i]?.ADMIN_STATE ?? "no state"}`).join(", ")}\nnetworkd:\n${this.networkd?.tail()}`;
        },
      },
    );
    this.timings.lastConfigured = Date.now() - started;
  }

  /** Lines networkd printed (since line FROM) that are not routine: parse problems, failures. */
  networkdWarnings(from = 0): string[] {
    return (this.networkd?.lines ?? []).slice(from).filter((l) => !isRoutine(l));
  }

  // -------------------------------------------------------------- kernel state

  /** `ip -j rule` for both families, with the kernel's own rules (0, 32766, 32767) left out unless ALL. */
  async rules(all = false): Promise<KernelRule[]> {
    const out: KernelRule[] = [];
    for (const family of ["ipv4", "ipv6"] as const) {
      const json = JSON.parse(await this.ip("H", [family === "ipv4" ? "-4" : "-6", "-j", "rule", "show"])) as KernelRule[];
      for (const rule of json) {
        const isDefault =
          (rule.priority === 0 && rule.table === "local" && rule.src === "all" && Object.keys(rule).length <= 3) ||
          (rule.priority === 32766 && rule.table === "main" && Object.keys(rule).length <= 3) ||
          (rule.priority === 32767 && rule.table === "default" && Object.keys(rule).length <= 3);
        if (all || !isDefault) out.push({ ...rule, family });
      }
    }
    return out;
  }

  /** `ip -j route show table TABLE` for one family. */
  async routes(table: string | number, family: "ipv4" | "ipv6"): Promise<Record<string, unknown>[]> {
    try {
      return JSON.parse(await this.ip("H", [family === "ipv4" ? "-4" : "-6", "-j", "route", "show", "table", String(table)]));
    } catch (err) {
      // iproute2 reports an empty, never-used table as an error on some versions.
      if (err instanceof CommandError && /table|FIB/i.test(err.stderr)) return [];
      throw err;
    }
  }

  /** Many `ip route get` in one `ip -batch` process; same answers as routeGet, in order. */
  async routeGetMany(flows: (RouteFlow & { dst: string })[]): Promise<RouteDecision[]> {
    if (flows.length === 0) return [];
    const lines = flows.map((f) => routeGetArgs(f.dst, f).join(" "));
    const result = await new Promise<{ stdout: string; stderr: string }>((resolve, reject) => {
      const child = execFile(
        "ip",
        ["-n", this.ns.H, "-j", "-force", "-batch", "-"],
        { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, timeout: 30_000 },
        (err, stdout, stderr) => (err && !stderr.includes("Command failed") ? reject(err) : resolve({ stdout, stderr })),
      );
      child.stdin!.end(lines.join("\n") + "\n");
    });
    // Failures: "RTNETLINK answers: REASON" then "Command failed -:LINE" on stderr; successes: one JSON array per line on stdout.
    const failed = new Map<number, string>();
    let reason = "";
    for (const line of result.stderr.split("\n")) {
      const m = /^Command failed -:(\d+)$/.exec(line.trim());
      if (m) failed.set(Number(m[1]) - 1, reason);
      else if (line.trim()) reason = line.replace(/^RTNETLINK answers: /, "").trim();
    }
    const answers = result.stdout.split("\n").filter((l) => l.trim().startsWith("["));
    let next = 0;
    return flows.map((f, i) => {
      if (failed.has(i)) return { verdict: "unreachable", error: failed.get(i)! };
      return decide(JSON.parse(answers[next++]!)[0], f.tunnel);
    });
  }

  /** The kernel's routing decision for a flow from H (`ip -j route get`). */
  async routeGet(dst: string, flow: RouteFlow): Promise<RouteDecision> {
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(await this.ip("H", ["-j", ...routeGetArgs(dst, flow)]))[0];
    } catch (err) {
      if (err instanceof CommandError) {
        return { verdict: "unreachable", error: err.stderr.replace(/^RTNETLINK answers: /, "").trim() };
      }
      throw err;
    }
    return decide(raw, flow.tunnel);
  }

  // ---------------------------------------------------------------- traffic

  /** Runs a batch of TCP/UDP probes from H (or ROLE), all in one helper process (as UID when given). */
  async probe(probes: ProbeSpec[], role: Role = "H", uid?: number): Promise<ProbeResult[]> {
    const list = probes.map((p) => ({ port: ECHO_PORT, timeoutMs: 2000, ...p }));
    const argv = [
      ...(uid === undefined ? [] : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups"]),
      process.execPath,
      join(HELPERS, "probe.mjs"),
      JSON.stringify(list),
    ];
    const { stdout } = await run(role === "H" && this.hostHolder ? this.hostArgv(argv) : ["ip", "netns", "exec", this.ns[role], ...argv], {
      timeoutMs: 30_000,
    });
    return JSON.parse(stdout);
  }

  // ---------------------------------------------------------------- teardown

  /** GEN_NETWORKD_LAB_HOLD=1: keep the lab up for a look by hand until Ctrl-C (which tears it down). */
  private async hold(): Promise<never> {
    const h = this.hostHolder?.pid;
    process.stdout.write(
      [
        ``,
        `lab ${this.options.tag} held (GEN_NETWORKD_LAB_HOLD); Ctrl-C tears it down. Try:`,
        `  ip -n ${this.ns.H} rule; ip -n ${this.ns.H} route show table all`,
        `  ip -n ${this.ns.H} route get 203.0.113.80 ipproto tcp`,
        ...(h ? [`  nsenter -t ${h} -m -n networkctl list      # H's own networkd, over its private D-Bus`, `  nsenter -t ${h} -m -n wg show`] : []),
        `  ip netns exec ${this.ns.H} ${process.execPath} ${join(HELPERS, "probe.mjs")} '[{"proto":"tcp","host":"203.0.113.80","port":${ECHO_PORT}}]'`,
        `  files: ${this.work}   logs: ${this.logDir}`,
        ``,
      ].join("\n"),
    );
    return new Promise<never>(() => {});
  }

  /** Stops every process (by PID) and deletes every namespace of this lab. */
  async destroy(): Promise<void> {
    if (process.env.GEN_NETWORKD_LAB_HOLD) await this.hold();
    await Promise.all([...this.procs].reverse().map((p) => p.stop(1500)));
    for (const name of Object.values(this.ns)) {
      await run(["ip", "netns", "del", name]).catch(() => {});
      untrackNamespace(name);
    }
    untrackDir(this.work);
    if (process.env.GEN_NETWORKD_LAB_KEEP) {
      process.stdout.write(`\nlab ${this.options.tag}: files and logs kept in ${this.work}\n`);
    } else {
      await rm(this.work, { recursive: true, force: true });
    }
  }
}

// ------------------------------------------------------------------ helpers

/** networkd's manager state file: it writes it once it has started (enumerated the links). */
const NETWORKD_STATE = "/run/systemd/netif/state";

/** Waits until networkd (PROC) has written STATEFILE, or fails with its output. Generous: a loaded machine starts a chroot's networkd slowly. */
async function waitStarted(proc: Proc, stateFile: string, timeoutMs = 30_000): Promise<void> {
  await poll("networkd to start (its state file)", () => (existsSync(stateFile) ? true : proc.running ? undefined : Promise.reject(new Error(`networkd exited:\n${proc.tail()}`))), {
    timeoutMs,
    describe: () => `networkd:\n${proc.tail()}`,
  });
}

/**
 * Shell lines (run in a private mount namespace, after its /run, /etc/systemd and read-only
 * /sys are set up) that give a chroot's systemd the same view: the chroot's /run,
 * /etc/systemd, /sys, /proc and /dev are the namespace's own, the lab's files (under
 * the temporary directory, key files included) are at the same paths, and users and
 * groups are the machine's, so a key file's group systemd-network is networkd's group
 * in the chroot too (the chroots number their system users differently). The root is
 * bound onto itself first, so that it is a mount point (257 otherwise warns that it
 * cannot tell whether root is a network file system), and gets a read-only cgroup2
 * (257 otherwise warns it cannot find its cgroup). Nothing for the machine's systemd.
 */
function chrootMounts(systemd: LabSystemd): string[] {
  const root = systemd.root;
  if (root === "/") return [];
  const tmp = tmpdir();
  return [
    `mount --bind ${root} ${root}`,
    `mount --rbind /run ${root}/run`,
    `mount --rbind /etc/systemd ${root}/etc/systemd`,
    `mount --bind /etc/passwd ${root}/etc/passwd`,
    `mount --bind /etc/group ${root}/etc/group`,
    `mount -t sysfs -o ro none ${root}/sys`,
    `mount -t cgroup2 -o ro none ${root}/sys/fs/cgroup`,
    `mount -t proc proc ${root}/proc`,
    `mount --rbind /dev ${root}/dev`,
    `mount --rbind ${tmp} ${root}${tmp}`,
  ];
}

/**
 * Shell lines that make, in a fresh /run/systemd, the directories of the varlink sockets
 * that PID 1 creates for networkd on a real machine (262's metrics and resolved-hook
 * sockets; without a PID 1, networkd binds them itself, as the systemd-network user, and
 * otherwise warns that it cannot). Unused by earlier versions.
 */
const SOCKET_DIRS = [
  "mkdir -p /run/systemd/report /run/systemd/resolve.hook",
  "chown systemd-network:systemd-network /run/systemd/report /run/systemd/resolve.hook",
];

export interface RouteFlow {
  ipproto?: string;
  dport?: number;
  uid?: number;
  mark?: number;
  /** A source address of H's: the lookup of a socket bound to it, or of a reply from it. */
  from?: string;
  sport?: number;
  /** The tunnel interface: a decision for it is the "tunnel" verdict. */
  tunnel: string;
}

function routeGetArgs(dst: string, flow: Omit<RouteFlow, "tunnel">): string[] {
  const args = ["route", "get", dst];
  if (flow.ipproto) args.push("ipproto", flow.ipproto);
  if (flow.dport !== undefined) args.push("dport", String(flow.dport));
  if (flow.uid !== undefined) args.push("uid", String(flow.uid));
  if (flow.mark !== undefined) args.push("mark", String(flow.mark));
  if (flow.from !== undefined) args.push("from", flow.from);
  if (flow.sport !== undefined) args.push("sport", String(flow.sport));
  return args;
}

/** Classifies one `ip -j route get` answer. */
function decide(raw: Record<string, unknown>, tunnel: string): RouteDecision {
  const type = typeof raw.type === "string" ? raw.type : undefined;
  const dev = typeof raw.dev === "string" ? raw.dev : undefined;
  const table = raw.table === undefined ? undefined : String(raw.table);
  const decision: RouteDecision = { verdict: "direct", raw };
  if (dev !== undefined) decision.dev = dev;
  if (table !== undefined) decision.table = table;
  if (type !== undefined) decision.type = type;
  if (type === "unreachable" || type === "blackhole" || type === "prohibit") decision.verdict = "unreachable";
  // The local table (rule 0, before any split rule) answers for local, broadcast and IPv6
  // multicast destinations; its choice of device says nothing about the split.
  else if (table === "local") decision.verdict = "direct";
  else if (dev === tunnel) decision.verdict = "tunnel";
  return decision;
}


export async function genKey(): Promise<string> {
  return (await run(["wg", "genkey"])).stdout.trim();
}

export async function publicKey(privateKey: string): Promise<string> {
  return (await run(["wg", "pubkey"], { input: privateKey + "\n" })).stdout.trim();
}

/** Writes a fresh WireGuard private key to PATH, mode 0640, group systemd-network (as networkd needs it). */
export async function writeKeyFile(path: string): Promise<string> {
  const key = await genKey();
  await writeFile(path, key + "\n", { mode: 0o640 });
  await chmod(path, 0o640);
  const gid = Number((await run(["getent", "group", "systemd-network"])).stdout.split(":")[2]);
  await chown(path, 0, gid);
  return key;
}

export function isWireguardNetdev(text: string): boolean {
  return parseUnitFile(text).some((s) => s.name === "NetDev" && s.entries.some((e) => e.key === "Kind" && e.value === "wireguard"));
}

export interface WireguardConfig {
  iface: string;
  privateKeyFile: string;
  mtu?: number;
  /** Arguments for `wg set IFACE …`. */
  wgArgs: string[];
}

/** Translates a parsed WireGuard .netdev into `wg set` arguments; unknown keys are errors, so nothing is silently dropped. */
export function wireguardFromNetdev(sections: Section[]): WireguardConfig {
  const value = (s: Section, key: string) => s.entries.filter((e) => e.key === key).map((e) => String(e.value));
  const netdev = sections.find((s) => s.name === "NetDev");
  if (!netdev) throw new Error(".netdev has no [NetDev] section");
  const iface = value(netdev, "Name")[0];
  if (!iface) throw new Error(".netdev: [NetDev] has no Name=");
  if (value(netdev, "Kind")[0] !== "wireguard") throw new Error(`.netdev: Kind=${value(netdev, "Kind")[0]}, expected wireguard`);
  const config: WireguardConfig = { iface, privateKeyFile: "", wgArgs: [] };
  for (const e of netdev.entries) {
    if (e.key === "MTUBytes") config.mtu = Number(e.value);
    else if (!["Name", "Kind", "Description"].includes(e.key)) throw new Error(`.netdev: [NetDev] ${e.key}= is not supported by the lab`);
  }
  for (const s of sections) {
    if (s.name === "WireGuard") {
      for (const e of s.entries) {
        const v = String(e.value);
        if (e.key === "PrivateKeyFile") {
          config.privateKeyFile = v;
          config.wgArgs.push("private-key", v);
        } else if (e.key === "ListenPort") config.wgArgs.push("listen-port", v === "auto" ? "0" : v);
        else if (e.key === "FirewallMark") config.wgArgs.push("fwmark", v);
        else if (e.key === "RouteTable" || e.key === "RouteMetric") {
          /* routes: wireguard-go adds none; networkd's [Route]s do the routing */
        } else throw new Error(`.netdev: [WireGuard] ${e.key}= is not supported by the lab`);
      }
    } else if (s.name === "WireGuardPeer") {
      const peer: string[] = [];
      const allowed: string[] = [];
      for (const e of s.entries) {
        const v = String(e.value);
        if (e.key === "PublicKey") peer.unshift("peer", v);
        else if (e.key === "Endpoint") peer.push("endpoint", v);
        else if (e.key === "AllowedIPs") allowed.push(...v.split(/[\s,]+/).filter(Boolean));
        else if (e.key === "PersistentKeepalive") peer.push("persistent-keepalive", v);
        else if (e.key === "PresharedKeyFile") peer.push("preshared-key", v);
        else if (e.key === "RouteTable" || e.key === "RouteMetric") {
          /* as above */
        } else throw new Error(`.netdev: [WireGuardPeer] ${e.key}= is not supported by the lab`);
      }
      if (peer[0] !== "peer") throw new Error(".netdev: [WireGuardPeer] without PublicKey=");
      if (allowed.length) peer.push("allowed-ips", allowed.join(","));
      config.wgArgs.push(...peer);
    } else if (s.name !== "NetDev") throw new Error(`.netdev: section [${s.name}] is not supported by the lab`);
  }
  if (!config.privateKeyFile) throw new Error(".netdev: [WireGuard] has no PrivateKeyFile=");
  return config;
}

/**
 * Runs networkd once over DIR (the complete generated output, .netdev included)
 * in a scratch namespace of its own, only to collect what it says about the
 * files: parse problems, permissions, unreadable keys. Returns the non-routine
 * lines printed while it loaded its configuration.
 */
export async function networkdParseWarnings(dir: string, tag: string): Promise<{ warnings: string[]; log: string[] }> {
  const systemd = labSystemd();
  installCleanupHandlers();
  reapStaleNamespaces();
  const ns = `${NS_PREFIX}${process.pid}-${tag}-${labCounter++}-S`;
  await run(["ip", "netns", "add", ns]);
  trackNamespace(ns);
  const logDir = await mkdtemp(join(tmpdir(), `gen-networkd-lab-scratch-`));
  trackDir(logDir);
  const script = [
    "set -e",
    "mount -t tmpfs tmpfs /run/systemd",
    ...SOCKET_DIRS,
    // A fresh /etc/systemd, so the mount points are made there and never on the machine.
    "mount -t tmpfs tmpfs /etc/systemd",
    "mkdir -p /etc/systemd/network /etc/systemd/networkd.conf.d",
    `mount --bind ${dir} /etc/systemd/network`,
    `if [ -d ${dir}/networkd.conf.d ]; then mount --bind ${dir}/networkd.conf.d /etc/systemd/networkd.conf.d; fi`,
    "umount /sys",
    "mount -t sysfs -o ro none /sys",
    ...chrootMounts(systemd),
    `exec ${systemdArgv(systemd, [SYSTEMD_BINARIES.networkd]).join(" ")}`,
  ].join("\n");
  let proc: Proc | undefined;
  try {
    proc = await Proc.start("networkd-scratch", ["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private", "sh", "-c", script], {
      logFile: join(logDir, "networkd.log"),
      env: { SYSTEMD_LOG_LEVEL: "info" },
    });
    // Configuration is read (and every parse problem printed) before the links are enumerated.
    await waitStarted(proc, `/proc/${proc.pid}/root${NETWORKD_STATE}`);
    await proc.stop();
    const warnings = proc.lines.filter(
      // This lab kernel has no WireGuard module: creating a Kind=wireguard device fails, as expected
      // (252: "netdev could not be created", 257 and later: "Failed to create netdev").
      (l) => !isRoutine(l) && !/: (netdev could not be created|Failed to create netdev): Operation not supported$/.test(l),
    );
    return { warnings, log: proc.lines };
  } finally {
    await proc?.stop();
    await run(["ip", "netns", "del", ns]).catch(() => {});
    untrackNamespace(ns);
    await rm(logDir, { recursive: true, force: true });
    untrackDir(logDir);
  }
}

/** Reads a directory of generated files into a name → text map. */
export async function readDir(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for (const name of (await readdir(dir)).sort()) {
    try {
      files.set(name, await readFile(join(dir, name), "utf8"));
    } catch {
      /* a subdirectory */
    }
  }
  return files;
}

