// `gen-networkd doctor`: does this host do what the spec says? Each check reads
// the live state (rules, tables, links, sysctls, WireGuard, the files in DIR),
// compares it with the plan, and on failure names one concrete fix.

import { execFile } from "node:child_process";
import { lstat, readdir, readFile, readlink, stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { CommandError } from "./command-error.js";
import { ruleText, simulationState } from "./explain.js";
import { generate } from "./generate.js";
import { localIp, networkdRunning, readLinks, readLiveState, readSysctl, type LinkInfo } from "./host-state.js";
import { INSTALL_HINT, keyFileWarnings } from "./keyfile.js";
import { plannedRouting, type PlannedRouting } from "./plan-routing.js";
import { formatPrefix, parseAddress, parsePrefix } from "./prefix.js";
import { decide, tableName, type Flow, type Route, type Rule, type RoutingState } from "./route-model.js";
import { columns, painter } from "./terminal.js";
import type { Spec } from "./spec.js";
import type { Plan } from "./model.js";
import { diffAgainstDisk, pathOf, type OutputFile } from "./write.js";
import { ownerOf } from "./ownership.js";
import { findShadowing, NETWORKD_DIRS, ourNetworks, type Shadowing } from "./networkd-files.js";
import { everyDestination, outsideAllowedIps, ROUTES_AT_ONCE_OLD_NETWORKD, specList } from "./plan.js";

export interface Check {
  readonly id: string;
  readonly status: "pass" | "fail" | "skip";
  /** One line: what was found. */
  readonly summary: string;
  /** The evidence, one item per line. */
  readonly details: readonly string[];
  /** On failure: one concrete fix, a command or a spec change. */
  readonly fix?: string;
}

export interface DoctorOptions {
  readonly output: string;
  readonly confDir?: string;
  readonly prefix: string;
  readonly json?: boolean;
}

/** The live host, as doctor reads it; replaceable for tests. */
export interface LiveHost {
  readonly state: RoutingState;
  readonly links: ReadonlyMap<string, LinkInfo>;
  /** Whether a systemd-networkd runs in this network namespace. */
  readonly networkdRunning: boolean;
  sysctl(...segments: string[]): Promise<string | undefined>;
  /** `wg show IFACE dump`, or undefined when wg is not installed. */
  wireguardDump(iface: string): Promise<string | undefined>;
  /** systemd-resolved's DNS servers (`resolvectl dns`): "Global" and per link name; or why they cannot be read. */
  resolvedServers(): Promise<{ servers: ReadonlyMap<string, readonly string[]> } | { unavailable: string; installed: boolean }>;
  /** /etc/resolv.conf: where it links to (if a link) and the nameservers it names. */
  resolvConf(): Promise<{ target?: string; nameservers: readonly string[] } | undefined>;
  readonly now: number;
  /** The directories networkd reads .network files from, earliest first (NETWORKD_DIRS). */
  readonly networkdDirs: readonly string[];
  /** Which of NAMES are enabled: wanted or required by a unit in /etc/systemd/system (what `systemctl enable` links). */
  enabledServices(names: readonly string[]): Promise<string[]>;
}

const TAILSCALE = { link: "tailscale0", table: 52, first: 5210, last: 5270 } as const;
/** WireGuard rejects a session older than this (REJECT_AFTER_TIME); a live peer with keepalive renews well before. */
const HANDSHAKE_MAX_AGE_S = 180;

export async function readLiveHost(): Promise<LiveHost> {
  const [state, links, running] = await Promise.all([readLiveState(localIp), readLinks(localIp), networkdRunning()]);
  return {
    state,
    links,
    networkdRunning: running,
    sysctl: readSysctl,
    wireguardDump: (iface) =>
      new Promise((resolve, reject) =>
        execFile("wg", ["show", iface, "dump"], { encoding: "utf8" }, (error, stdout, stderr) => {
          if (!error) resolve(stdout);
          else if ((error as NodeJS.ErrnoException).code === "ENOENT") resolve(undefined);
          else reject(new Error((stderr || error.message).trim().split("\n")[0]));
        }),
      ),
    resolvedServers: () =>
      new Promise((resolve) =>
        execFile("resolvectl", ["dns"], { encoding: "utf8", timeout: 10_000 }, (error, stdout, stderr) => {
          if (!error) resolve({ servers: parseResolvectlDns(stdout) });
          else if ((error as NodeJS.ErrnoException).code === "ENOENT") resolve({ unavailable: "resolvectl is not installed (no systemd-resolved)", installed: false });
          else resolve({ unavailable: `systemd-resolved does not answer: ${(stderr || error.message).trim().split("\n")[0]}`, installed: true });
        }),
      ),
    resolvConf: async () => {
      const target = await readlink(RESOLV_CONF).catch(() => undefined);
      const text = await readFile(RESOLV_CONF, "utf8").catch(() => undefined);
      if (text === undefined && target === undefined) return undefined;
      const nameservers = (text ?? "").split("\n").flatMap((line) => /^\s*nameserver\s+(\S+)/.exec(line)?.[1] ?? []);
      return { ...(target === undefined ? {} : { target }), nameservers };
    },
    now: Date.now(),
    networkdDirs: NETWORKD_DIRS,
    enabledServices: (names) => enabledServicesIn(SYSTEM_UNIT_DIR, names),
  };
}

/** Where `systemctl enable` links units (and NixOS puts its own). */
const SYSTEM_UNIT_DIR = "/etc/systemd/system";

/** Which of NAMES some unit in DIR wants or requires (DIR/*.wants/NAME, DIR/*.requires/NAME: links, dangling or not). */
export async function enabledServicesIn(dir: string, names: readonly string[]): Promise<string[]> {
  const wants = (await readdir(dir).catch(() => [] as string[])).filter((d) => d.endsWith(".wants") || d.endsWith(".requires"));
  const linked = (name: string) => Promise.all(wants.map((d) => lstat(join(dir, d, name)).then(() => true, () => false)));
  const enabled = await Promise.all(names.map(async (name) => (await linked(name)).some(Boolean)));
  return names.filter((_, i) => enabled[i]);
}

const RESOLV_CONF = "/etc/resolv.conf";
/** Where systemd-resolved listens for applications that read /etc/resolv.conf. */
const RESOLVED_STUBS = ["127.0.0.53", "127.0.0.54"];

/** `resolvectl dns`: "Global: A B" and "Link N (NAME): A B" lines; servers may carry %IFINDEX and #SNI suffixes. */
export function parseResolvectlDns(text: string): Map<string, string[]> {
  const servers = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const match = /^(?:Global|Link \d+ \(([^)]+)\)):(.*)$/.exec(line.trim());
    if (!match) continue;
    servers.set(match[1] ?? "Global", match[2]!.trim().split(/\s+/).filter(Boolean).map((s) => s.replace(/[%#].*$/, "")));
  }
  return servers;
}

const pass = (id: string, summary: string, details: string[] = []): Check => ({ id, status: "pass", summary, details });
const skip = (id: string, summary: string): Check => ({ id, status: "skip", summary, details: [] });
const fail = (id: string, summary: string, details: string[], fix: string): Check => ({ id, status: "fail", summary, details, fix });

const familyName = (family: 4 | 6) => (family === 4 ? "ipv4" : "ipv6");
const ruleKey = (rule: Rule) => `${familyName(rule.family)} ${rule.priority}: ${ruleText(rule)}`;
const routeKey = (route: Route) =>
  `${familyName(route.family)} table ${tableName(route.table)}: ${route.type === "unicast" ? "" : `${route.type} `}${formatPrefix(route.dst)}${route.type === "unicast" && route.dev ? ` dev ${route.dev}` : ""} metric ${route.metric}`;
/** The first lines of a long list of evidence, and how many more there are. */
const atMost = (lines: string[], count = 20) => (lines.length <= count ? lines : [...lines.slice(0, count), `… and ${lines.length - count} more`]);
/** What networkd applies of one .network file's routes on every version (the plan's limit has headroom below it). */
const NETWORKD_ROUTES_PER_FILE = 8192;
const ruleDelete = (rule: Rule) => `ip -${rule.family} rule del priority ${rule.priority} ${ruleText(rule)}`;
const reconfigure = (links: Iterable<string>) => `networkctl reconfigure ${[...new Set(links)].sort().join(" ")}`;
const START_NETWORKD = "systemctl enable --now systemd-networkd";
/**
 * A fix that has networkd act on its files (a reload, reconfigure or restart): STEP while it
 * runs; otherwise starting it, which configures every link from its files (networkctl would
 * only fail to reach it).
 */
const viaNetworkd = (live: LiveHost, step: string) => (live.networkdRunning ? step : START_NETWORKD);

function checkNetworkd(live: LiveHost): Check {
  if (live.networkdRunning) return pass("networkd", "systemd-networkd runs in this network namespace");
  return fail(
    "networkd",
    "systemd-networkd is not running in this network namespace: nothing applies the generated files",
    ["no systemd-networkd process shares this network namespace: networkctl cannot reach one, and gen-networkd apply refuses to write"],
    START_NETWORKD,
  );
}

/**
 * Directories networkd (user systemd-network) cannot use: those holding our files must
 * be listable by others (r-x), each one above them enterable (--x).
 */
async function closedDirectories(dirs: readonly string[]): Promise<{ details: string[]; enter: string[]; list: string[] }> {
  const found = new Map<string, "enter" | "list">();
  for (const dir of new Set(dirs.map((d) => resolve(d)))) {
    for (let path = dir; ; path = dirname(path)) {
      const mode = (await stat(path).catch(() => undefined))?.mode;
      if (mode !== undefined && path === dir && (mode & 0o005) !== 0o005) found.set(path, "list");
      else if (mode !== undefined && (mode & 0o001) === 0) found.set(path, found.get(path) ?? "enter");
      if (dirname(path) === path) break;
    }
  }
  const sorted = [...found].sort(([a], [b]) => (a < b ? -1 : 1));
  const modeOf = async (path: string) => ((await stat(path)).mode & 0o777).toString(8).padStart(4, "0");
  const details: string[] = [];
  for (const [path, need] of sorted) details.push(`${path} has mode ${await modeOf(path)} (networkd, as user systemd-network, cannot ${need} it)`);
  return { details, enter: sorted.filter(([, n]) => n === "enter").map(([p]) => p), list: sorted.filter(([, n]) => n === "list").map(([p]) => p) };
}

async function checkFiles(specPath: string, files: readonly OutputFile[], dirs: readonly string[], identity: string, applyCommand: string): Promise<Check[]> {
  const changes = await diffAgainstDisk(files, identity, { alsoPrune: dirs });
  const problems = [
    ...changes.create.map((f) => `missing: ${pathOf(f)}`),
    ...changes.update.map((f) => `stale: ${pathOf(f)} (${specPath} changed since it was generated)`),
    ...changes.foreign.map((f) => `not ours: ${pathOf(f)} (no gen-networkd mark for this tunnel)`),
    ...changes.stale.map((f) => `left over: ${f.path} (no longer in the spec)`),
  ];
  const present = [...changes.unchanged, ...changes.update].map(pathOf);
  const badModes: string[] = [];
  for (const path of present) {
    const mode = (await stat(path)).mode & 0o777;
    if (mode !== 0o644) badModes.push(`${path} has mode ${mode.toString(8).padStart(4, "0")}`);
  }
  const badDirectories = await closedDirectories(files.map((f) => f.dir));
  const fixes = [
    badModes.length > 0 && `chmod 0644 ${badModes.map((b) => b.split(" ")[0]).join(" ")}`,
    badDirectories.enter.length > 0 && `chmod o+x ${badDirectories.enter.join(" ")}`,
    badDirectories.list.length > 0 && `chmod 0755 ${badDirectories.list.join(" ")}`,
  ].filter((fix): fix is string => typeof fix === "string");
  return [
    problems.length === 0
      ? pass("files", `${files.length} generated files present, ours and current`)
      : fail("files", `${problems.length} of the generated files are not what ${specPath} generates`, problems, changes.foreign.length ? `${applyCommand} --force (after checking the files not ours)` : applyCommand),
    present.length === 0
      ? skip("file-modes", "no generated file present to check (see files)")
      : fixes.length === 0
      ? pass("file-modes", `generated files have mode 0644, networkd can enter every directory on their paths`)
      : fail("file-modes", `networkd cannot read ${badModes.length + badDirectories.details.length} of the generated files or their directories (they hold no secrets)`, [...badDirectories.details, ...badModes], fixes.join(" && ")),
  ];
}

async function checkKeys(spec: Spec, specPath: string): Promise<Check> {
  if (!spec.tunnel.manage) return skip("key-file", "the tunnel is not managed by networkd (manage = false): no key file to check");
  const paths = [spec.tunnel.private_key_file!, ...(spec.tunnel.peers ?? []).flatMap((p) => (p.preshared_key_file ? [p.preshared_key_file] : []))];
  const details: string[] = [];
  let fix: string | undefined;
  for (const path of paths) {
    try {
      await stat(path);
    } catch (error) {
      const denied = (error as NodeJS.ErrnoException).code === "EACCES";
      details.push(denied ? `${path} cannot be examined by this user` : `${path} does not exist`);
      fix ??= denied ? "run doctor as root (sudo gen-networkd doctor …)" : INSTALL_HINT(path);
      continue;
    }
    for (const warning of await keyFileWarnings(path, specPath)) {
      details.push(warning.text.replace(`${specPath}: `, ""));
      fix ??= warning.fix;
    }
  }
  return fix === undefined ? pass("key-file", `${paths.join(", ")}: readable by networkd, not by everyone`) : fail("key-file", "a key file networkd needs is missing, unreadable to it, or world-readable", details, fix);
}

function checkLinks(spec: Spec, planned: PlannedRouting, live: LiveHost): Check {
  const details: string[] = [];
  let fix: string | undefined;
  for (const link of planned.links) {
    const info = live.links.get(link.name);
    if (info?.networkdState === "failed") {
      details.push(`${link.name}: networkd failed configuring it (its link state is "failed"; networkd's log says why)`);
      fix ??= `journalctl -b -u systemd-networkd | grep ${link.name}, fix the cause (see route-count), then ${viaNetworkd(live, `networkctl reconfigure ${link.name}`)}`;
    }
    if (!info) {
      details.push(`${link.name} does not exist`);
      fix ??= link.name === spec.tunnel.interface && !spec.tunnel.manage ? `bring your tunnel ${link.name} up (e.g. wg-quick up ${link.name}), then ${viaNetworkd(live, `networkctl reconfigure ${link.name}`)}` : viaNetworkd(live, "networkctl reload");
      continue;
    }
    if (!info.up) {
      details.push(`${link.name} is down`);
      fix ??= viaNetworkd(live, `networkctl up ${link.name} && networkctl reconfigure ${link.name}`);
    }
    const missing = link.addresses.filter((a) => !info.addresses.includes(a));
    if (missing.length) {
      details.push(`${link.name} lacks ${missing.join(", ")}`);
      fix ??= viaNetworkd(live, `networkctl reconfigure ${link.name}`);
    }
  }
  const names = planned.links.map((l) => l.name).join(", ");
  return fix === undefined ? pass("links", `${names} up with their addresses`) : fail("links", `a planned link is missing, down or without its addresses`, details, fix);
}

/** Whether two paths name one file (networkd may know it by another path, e.g. through a bind mount). */
async function sameFile(a: string, b: string): Promise<boolean> {
  if (resolve(a) === resolve(b)) return true;
  const [x, y] = await Promise.all([stat(a).catch(() => undefined), stat(b).catch(() => undefined)]);
  return x !== undefined && y !== undefined && x.dev === y.dev && x.ino === y.ino;
}

/**
 * Which .network networkd configures each of our links from (NETWORK_FILE in its link state):
 * an earlier file matching the link takes it silently, and ours is then ignored.
 */
async function checkNetworkFiles(plan: Plan, outputDir: string, live: LiveHost): Promise<Check> {
  const shadowing = await findShadowing(plan, outputDir, live.networkdDirs);
  const applied: string[] = [];
  const unchecked: string[] = [];
  const details: string[] = [];
  let fix: string | undefined;
  for (const { link, fileName } of ourNetworks(plan)) {
    const info = live.links.get(link);
    const ours = join(outputDir, fileName);
    if (!info) unchecked.push(`${link} does not exist`);
    else if (info.networkdState === undefined) unchecked.push(`networkd has no state for ${link}`);
    else if (info.networkFile !== undefined && (await sameFile(info.networkFile, ours))) applied.push(link);
    else {
      const known: Shadowing[] = [];
      for (const s of shadowing) if (s.link === link && (info.networkFile === undefined ? s.kind === "masks" : await sameFile(s.path, info.networkFile))) known.push(s);
      const reason = known[0];
      const found = info.networkFile === undefined ? `networkd configures ${link} from no .network file (its state is "${info.networkdState}"), not from ${ours}` : `networkd configures ${link} from ${info.networkFile}, not from ${ours}`;
      details.push(reason ? `${found}: ${reason.path} ${reason.why}` : found);
      fix ??= reason ? `${reason.fix}; then networkctl reload` : `networkctl reload (networkd then chooses again; if ${link} keeps another file, that file matches it before ours)`;
    }
  }
  if (fix !== undefined) return fail("network-files", "networkd configures a link of ours from another .network file than ours", [...details, ...unchecked], fix);
  if (applied.length === 0) return skip("network-files", `no link of ours to check: ${unchecked.join("; ")}`);
  return pass("network-files", `networkd configures ${applied.join(", ")} from our files${unchecked.length ? ` (not checked: ${unchecked.join("; ")})` : ""}`);
}

function checkRules(planned: PlannedRouting, live: LiveHost): Check {
  const liveKeys = new Set(live.state.rules.map(ruleKey));
  const plannedKeys = new Set(planned.rules.map(ruleKey));
  const missing = planned.rules.filter((r) => !liveKeys.has(ruleKey(r)));
  const tables = planned.ownTables;
  const priorities = new Set(planned.rules.map((r) => `${r.family} ${r.priority}`));
  const strays = live.state.rules.filter(
    (r) => !plannedKeys.has(ruleKey(r)) && ((r.action.kind === "lookup" && tables.has(r.action.table)) || priorities.has(`${r.family} ${r.priority}`)),
  );
  if (missing.length === 0 && strays.length === 0) return pass("rules", `all ${planned.rules.length} planned rules present, nothing else uses our table or priorities`);
  const details = [...missing.map((r) => `missing: ${ruleKey(r)}`), ...strays.map((r) => `not planned: ${ruleKey(r)}`)];
  const fix = missing.length ? viaNetworkd(live, reconfigure(missing.map((r) => planned.linkOf.get(r)!))) : ruleDelete(strays[0]!);
  return fail("rules", `${missing.length} planned rules missing, ${strays.length} unplanned rules on our table or priorities`, details, fix);
}

function checkTables(planned: PlannedRouting, live: LiveHost): Check {
  const tables = planned.ownTables;
  const liveKeys = new Set(live.state.routes.map(routeKey));
  const plannedKeys = new Set(planned.routes.map(routeKey));
  const missing = planned.routes.filter((r) => !liveKeys.has(routeKey(r)));
  const extra = live.state.routes.filter((r) => tables.has(r.table) && !plannedKeys.has(routeKey(r)));
  const names = [...tables].map(tableName).join(", ");
  if (missing.length === 0 && extra.length === 0) return pass("tables", `table ${names} holds exactly the ${planned.routes.length} planned routes`);
  const details = atMost([...missing.map((r) => `missing: ${routeKey(r)}`), ...extra.map((r) => `not planned: ${routeKey(r)}`)]);
  const fix = viaNetworkd(live, reconfigure(missing.length ? missing.map((r) => planned.linkOf.get(r)!) : planned.links.map((l) => l.name)));
  return fail("tables", `${missing.length} planned routes missing, ${extra.length} unplanned routes in table ${names}`, details, fix);
}

/** `[Route]` sections per .network file of this owner in DIR (what networkd was given, whatever generated it). */
async function routesPerFile(dir: string, owner: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let names: string[] = [];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith(".network")).sort();
  } catch {
    return counts;
  }
  for (const name of names) {
    const text = await readFile(join(dir, name), "utf8");
    if (ownerOf(text.slice(0, 1024)) !== owner) continue;
    counts.set(join(dir, name), text.match(/^\[Route\]\s*$/gm)?.length ?? 0);
  }
  return counts;
}

/**
 * The kernel's route count per table and family against the plan's: a networkd that truncated
 * a .network (past 8,192 routes) or failed a link leaves the table short, which the rules
 * cannot show. Names the cause it can see (an oversized file, a failed link) and its fix.
 */
async function checkRouteCounts(planned: PlannedRouting, live: LiveHost, dir: string, owner: string, applyCommand: string): Promise<Check> {
  const key = (table: number, family: 4 | 6) => `${tableName(table)} ${familyName(family)}`;
  const plannedCounts = new Map<string, number>();
  for (const r of planned.routes) plannedCounts.set(key(r.table, r.family), (plannedCounts.get(key(r.table, r.family)) ?? 0) + 1);
  const liveCounts = new Map<string, number>();
  for (const r of live.state.routes) if (planned.ownTables.has(r.table)) liveCounts.set(key(r.table, r.family), (liveCounts.get(key(r.table, r.family)) ?? 0) + 1);
  const rows = [...new Set([...plannedCounts.keys(), ...liveCounts.keys()])].sort().map((k) => ({ k, plan: plannedCounts.get(k) ?? 0, kernel: liveCounts.get(k) ?? 0 }));
  const line = (r: (typeof rows)[number]) => `table ${r.k.replace(" ", ", ")}: ${r.kernel} routes in the kernel, ${r.plan} planned`;
  const short = rows.filter((r) => r.kernel < r.plan);
  if (rows.every((r) => r.kernel === r.plan)) return pass("route-count", `the kernel holds the planned number of routes: ${rows.map((r) => `${r.plan} ${r.k}`).join(", ")}`);
  if (short.length === 0) return pass("route-count", `every planned route can be there (more routes than planned: see tables)`, rows.map(line));
  const details = rows.map(line);
  const oversized = [...(await routesPerFile(dir, owner))].filter(([, count]) => count > NETWORKD_ROUTES_PER_FILE);
  const failed = planned.links.filter((l) => live.links.get(l.name)?.networkdState === "failed").map((l) => l.name);
  const total = planned.routes.length;
  let fix: string;
  if (oversized.length > 0) {
    details.push(
      ...oversized.map(([path, count]) => `cause: ${path} holds ${count} routes; networkd 257 and later (and every version on a kernel before 6.3) applies at most ${NETWORKD_ROUTES_PER_FILE} per .network and drops the rest ("Failed to allocate route … Argument list too long")`),
    );
    fix = `${applyCommand} (this version spreads the routes over several anchor links of at most 8000 routes each)`;
  } else if (failed.length > 0) {
    details.push(
      `cause: networkd failed ${failed.join(", ")}` +
        (total > ROUTES_AT_ONCE_OLD_NETWORKD
          ? `; with ${total} routes, networkd 252 and 254 ("Failed to configure route: Numerical result out of range") send more requests at once than their netlink socket takes (65,535); 257 and later send them in small batches`
          : ""),
    );
    fix =
      total > ROUTES_AT_ONCE_OLD_NETWORKD
        ? `networkd 257 or later, or a spec with fewer than ${ROUTES_AT_ONCE_OLD_NETWORKD} routes (a shorter list); then ${viaNetworkd(live, reconfigure(failed))}`
        : `journalctl -b -u systemd-networkd | grep -E '${failed.join("|")}', fix what it names, then ${viaNetworkd(live, reconfigure(failed))}`;
  } else {
    details.push("cause: not visible here: routes were deleted after networkd added them, or networkd is still adding them");
    // networkctl reconfigure did not re-add a throw deleted by hand (networkd 252 in the lab); a start adds every route of the files.
    fix = viaNetworkd(live, "systemctl restart systemd-networkd (it adds every route of its files when it starts; a reconfigure may not re-add a deleted throw)");
  }
  return fail("route-count", `the kernel holds fewer routes than planned (${short.map((r) => `${r.kernel} of ${r.plan} ${r.k}`).join(", ")})`, details, fix);
}

/** Flows the plan sends into the tunnel: a public address per family, for each kind of captured flow. */
function capturedFlows(planned: PlannedRouting, state: RoutingState, tunnel: string): Flow[] {
  const flows: Flow[] = [];
  const candidates = ["203.0.113.9", "2001:db8::1", ...planned.routes.filter((r) => r.type === "unicast" && r.dev === tunnel && r.dst.length > 0).map((r) => formatPrefix(r.dst).replace(/\/.*/, ""))];
  for (const rule of planned.rules) {
    if (rule.action.kind !== "lookup" || !planned.ownTables.has(rule.action.table)) continue;
    for (const text of candidates) {
      const address = parseAddress(text);
      if (!address.ok || address.value.family !== rule.family) continue;
      const flow: Flow = { family: rule.family, dst: address.value.value, src: 0n, proto: rule.ipproto ?? 6, sport: 0, dport: rule.dport?.start ?? 443, uid: rule.uid?.start ?? 0, mark: 0, iif: "lo" };
      const expected = decide(state, flow);
      if (expected.kind === "route" && expected.route.dev === tunnel) {
        flows.push(flow);
        break;
      }
    }
  }
  return flows;
}

function checkShadowing(spec: Spec, planned: PlannedRouting, live: LiveHost): Check {
  // What our rules alone do with the host's routes: which flows they send into the tunnel, and by which rule.
  const expectedState = simulationState(planned, { rules: [], routes: live.state.routes });
  const plannedKeys = new Set(planned.rules.map(ruleKey));
  const flows = capturedFlows(planned, expectedState, spec.tunnel.interface);
  const shadows: { flow: Flow; rule: Rule; ours: number }[] = [];
  for (const flow of flows) {
    const expected = decide(expectedState, flow);
    const actual = decide(live.state, flow);
    if (actual.rule && expected.rule && !plannedKeys.has(ruleKey(actual.rule)) && actual.rule.priority < expected.rule.priority) {
      shadows.push({ flow, rule: actual.rule, ours: expected.rule.priority });
    }
  }
  if (flows.length === 0) return skip("shadowing", "the plan sends no probe flow into the tunnel to check");
  if (shadows.length === 0) return pass("shadowing", `no earlier rule takes captured flows before ours (${flows.length} probe${flows.length === 1 ? "" : "s"})`);
  const details = shadows.map(({ flow, rule, ours }) => `${flow.proto === 17 ? "udp" : flow.proto === 6 ? "tcp" : `proto ${flow.proto}`} IPv${flow.family} flows are decided by ${ruleKey(rule)} before ours (${ours})`);
  return fail("shadowing", `${shadows.length} of ${flows.length} probe flows never reach our rules`, details, `${ruleDelete(shadows[0]!.rule)} (or move it after ${shadows[0]!.ours})`);
}

function checkTailscale(planned: PlannedRouting, live: LiveHost): Check {
  const theirs = live.state.rules.filter((r) => (r.action.kind === "lookup" && r.action.table === TAILSCALE.table) || (r.priority >= TAILSCALE.first && r.priority <= TAILSCALE.last));
  const present = live.links.has(TAILSCALE.link) || theirs.length > 0 || live.state.routes.some((r) => r.table === TAILSCALE.table);
  if (!present) return skip("tailscale", `tailscale not found (no ${TAILSCALE.link}, no table ${TAILSCALE.table})`);
  const lookups = theirs.filter((r) => r.action.kind === "lookup" && r.action.table === TAILSCALE.table);
  const families = [...new Set(planned.rules.map((r) => r.family))];
  const missing = families.filter((f) => !lookups.some((r) => r.family === f));
  if (missing.length) {
    return fail("tailscale", `tailscale is here but its rules are gone`, missing.map((f) => `no IPv${f} rule looks up table ${TAILSCALE.table}: tailnet traffic follows our rules and main instead`), "systemctl restart tailscaled (it re-adds its rules)");
  }
  const tables = planned.ownTables;
  const plannedKeys = new Set(planned.rules.map(ruleKey));
  const last = (family: 4 | 6) => Math.max(...theirs.filter((r) => r.family === family).map((r) => r.priority));
  const early = live.state.rules.filter(
    (r) => ((r.action.kind === "lookup" && tables.has(r.action.table)) || plannedKeys.has(ruleKey(r))) && r.priority <= last(r.family),
  );
  if (early.length) {
    return fail("tailscale", `rules of ours come before tailscale's, so tailnet traffic could enter the tunnel`, early.map((r) => `${ruleKey(r)} precedes tailscale's rule ${last(r.family)}`), ruleDelete(early[0]!));
  }
  return pass("tailscale", `tailscale's rules present (up to ${Math.max(...lookups.map((r) => r.priority))}) and before ours`);
}

async function checkReversePath(spec: Spec, live: LiveHost): Promise<Check> {
  const iface = spec.tunnel.interface;
  if (!live.links.has(iface)) return skip("rp-filter", `${iface} does not exist, so its filter cannot be read (see links)`);
  const all = Number(await live.sysctl("net", "ipv4", "conf", "all", "rp_filter"));
  const own = Number((await live.sysctl("net", "ipv4", "conf", iface, "rp_filter")) ?? (await live.sysctl("net", "ipv4", "conf", "default", "rp_filter")));
  // The kernel uses the larger of conf/all and conf/IFACE.
  const effective = Math.max(Number.isNaN(all) ? 0 : all, Number.isNaN(own) ? 0 : own);
  if (effective !== 1) return pass("rp-filter", `reverse-path filter on ${iface}: ${effective === 2 ? "loose" : "off"} (${effective})`);
  return fail(
    "rp-filter",
    `strict reverse-path filtering on ${iface} drops tunnel replies (the way back to their sources is main's, not ${iface})`,
    [`net.ipv4.conf.all.rp_filter=${all}, net.ipv4.conf.${iface}.rp_filter=${own}`],
    `sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.${iface}.rp_filter=2 (and the same in /etc/sysctl.d/ to keep it)`,
  );
}

/** The tunnel's peers from `wg show IFACE dump` (a peer's fields per line), or why they cannot be read. */
async function readPeers(iface: string, live: LiveHost): Promise<{ peers: string[][] } | { unreadable: string }> {
  if (!live.links.has(iface)) return { unreadable: `${iface} does not exist (see links)` };
  let dump: string | undefined;
  try {
    dump = await live.wireguardDump(iface);
  } catch (error) {
    return { unreadable: `wg show ${iface}: ${(error as Error).message}` };
  }
  if (dump === undefined) return { unreadable: "wg is not installed (wireguard-tools)" };
  return { peers: dump.trim().split("\n").slice(1).map((line) => line.split("\t")) };
}

async function checkHandshake(spec: Spec, live: LiveHost): Promise<Check> {
  const iface = spec.tunnel.interface;
  const read = await readPeers(iface, live);
  if ("unreadable" in read) return skip("handshake", read.unreadable);
  const { peers } = read;
  const details: string[] = [];
  let recent = 0;
  for (const [publicKey, , endpoint, , latest, , , keepalive] of peers) {
    const age = Math.round(live.now / 1000 - Number(latest));
    const name = `peer ${publicKey!.slice(0, 8)}… (${endpoint})`;
    if (Number(latest) !== 0 && age <= HANDSHAKE_MAX_AGE_S) recent++;
    // Without keepalive an idle peer has no reason to shake hands: only a silent keepalive peer is a problem.
    else if (keepalive !== "off") details.push(Number(latest) === 0 ? `${name}: no handshake yet` : `${name}: last handshake ${age} s ago`);
  }
  const idle = peers.length - recent - details.length;
  if (details.length === 0) return pass("handshake", `${recent} of ${peers.length} peers with a recent handshake${idle ? `, ${idle} idle without keepalive` : ""}`);
  return fail("handshake", `WireGuard peers without a recent handshake`, details, `check that the endpoint is reachable over UDP and that the peer has this host's public key (wg show ${iface})`);
}

/** The live peers' allowed ips against what the plan sends into the tunnel: WireGuard drops what no peer's hold. */
async function checkAllowedIps(spec: Spec, specPath: string, plan: Plan, live: LiveHost, applyCommand: string): Promise<Check> {
  const iface = spec.tunnel.interface;
  const read = await readPeers(iface, live);
  if ("unreadable" in read) return skip("allowed-ips", read.unreadable);
  // The fourth field of a peer's line: its allowed ips, comma-separated, or "(none)".
  const allowed = read.peers.flatMap((fields) => (fields[3] ?? "").split(",")).flatMap((text) => {
    const parsed = parsePrefix(text);
    return parsed.ok ? [parsed.value] : [];
  });
  const outside = outsideAllowedIps(plan.tunnelled, allowed);
  if (outside.length === 0) return pass("allowed-ips", `the peers' allowed ips hold every destination the plan sends into ${iface}`);
  const widest = everyDestination(outside.map((o) => o.family));
  const fix = spec.tunnel.manage
    ? `add them to a peer's allowed_ips in ${specPath} (e.g. ${specList(widest)}), then ${applyCommand}`
    : `add them to a peer's AllowedIPs where ${iface} is configured (e.g. wg set ${iface} peer PUBLIC_KEY allowed-ips ${widest.join(",")}), keeping its Table = off`;
  return fail(
    "allowed-ips",
    `no peer of ${iface} has these captured destinations in its allowed ips, so WireGuard drops what is sent to them ("Required key not available")`,
    outside.map((o) => o.line),
    fix,
  );
}

/**
 * tunnel.dns: networkd hands DNS=/Domains= to systemd-resolved only, so the keys do
 * something only where resolved runs and applications ask it (/etc/resolv.conf on its
 * stub); then resolved must list the resolvers for the tunnel's link (and, for the DNS
 * kill switch, as its global servers).
 */
async function checkDns(spec: Spec, plan: Plan, live: LiveHost): Promise<Check> {
  const resolvers = spec.tunnel.dns!;
  const iface = spec.tunnel.interface;
  const resolvConf = await live.resolvConf();
  const names = resolvConf ? `${RESOLV_CONF}${resolvConf.target ? ` (→ ${resolvConf.target})` : ""} names ${resolvConf.nameservers.join(", ") || "no nameserver"}` : `there is no ${RESOLV_CONF}`;
  const withoutResolved = `or, without resolved, list only the tunnel's resolvers in ${RESOLV_CONF} (${resolvers.map((a) => `nameserver ${a}`).join(", ")}): the split routes queries to them through ${iface}`;
  const found = await live.resolvedServers();
  if ("unavailable" in found) {
    const start = found.installed ? "systemctl enable --now systemd-resolved" : "apt install systemd-resolved (then systemctl enable --now systemd-resolved)";
    return fail("dns", `nothing uses tunnel.dns: ${found.unavailable}, and networkd hands DNS= and Domains= only to it`, [names], `${start}, ${withoutResolved}`);
  }
  const problems: string[] = [];
  const listed = found.servers.get(iface);
  if (listed === undefined) problems.push(`resolved knows no link ${iface}`);
  else if (resolvers.some((a) => !listed.includes(a))) problems.push(`resolved lists ${listed.join(", ") || "no servers"} for ${iface}, not ${resolvers.join(", ")}`);
  const global = found.servers.get("Global") ?? [];
  const killswitch = plan.units.some((u) => u.kind === "resolved-conf");
  if (killswitch && resolvers.some((a) => !global.includes(a))) problems.push(`the DNS kill switch's global servers are ${global.join(", ") || "none"}, not ${resolvers.join(", ")} (resolved reads its drop-in only when it starts)`);
  if (!resolvConf || !resolvConf.nameservers.every((a) => RESOLVED_STUBS.includes(a)) || resolvConf.nameservers.length === 0) {
    problems.push(`applications do not ask resolved: ${names}, not resolved's stub 127.0.0.53`);
  }
  if (problems.length === 0) return pass("dns", `systemd-resolved lists ${resolvers.join(", ")} for ${iface}${killswitch ? " and globally (kill switch)" : ""}; ${RESOLV_CONF} points to its stub`);
  const fix = problems.some((p) => p.startsWith("applications"))
    ? `ln -sf /run/systemd/resolve/stub-resolv.conf ${RESOLV_CONF}`
    : problems.some((p) => p.startsWith("the DNS kill switch"))
      ? "systemctl restart systemd-resolved"
      : viaNetworkd(live, `networkctl reconfigure ${iface}`);
  return fail("dns", "systemd-resolved does not send lookups where tunnel.dns says", problems, fix);
}

/** Every check of SPEC against the live host, in a fixed order. */
/** Services that bring up links networkd does not manage; at boot they race networkd (docs/leakproof.md §8). */
const OTHER_NETWORK_MANAGERS = ["NetworkManager.service", "networking.service", "connman.service", "wicked.service", "dhcpcd.service"];

/** With the kill switch, another enabled network manager must wait for the anchor (split.killswitch_before). */
async function checkBootOrder(spec: Spec, specPath: string, live: LiveHost): Promise<Check> {
  if (!spec.split.killswitch) return skip("boot-order", "no kill switch: captured traffic goes direct while the tunnel is not up, by design");
  const ordered = new Set(spec.split.killswitch_before ?? []);
  const enabled = await live.enabledServices(OTHER_NETWORK_MANAGERS);
  const racing = enabled.filter((service) => !ordered.has(service));
  if (racing.length === 0) {
    return pass("boot-order", enabled.length === 0 ? "no other network manager is enabled" : `${enabled.join(", ")} start${enabled.length === 1 ? "s" : ""} only once networkd has configured the anchor (split.killswitch_before)`);
  }
  return fail(
    "boot-order",
    `${racing.join(", ")} ${racing.length === 1 ? "is" : "are"} enabled and may bring up links at boot before networkd has configured the anchor: captured traffic leaves directly until then (the lab counted about 1,000 packets per boot)`,
    racing.map((service) => `${service}: enabled, not in split.killswitch_before`),
    `add ${racing.map((service) => JSON.stringify(service)).join(", ")} to split.killswitch_before in ${specPath}, then apply`,
  );
}

export async function doctorChecks(specPath: string, options: DoctorOptions, live: LiveHost): Promise<Check[]> {
  const { spec, plan, files, dirs } = await generate(specPath, { outputDir: options.output, confDir: options.confDir, prefix: options.prefix });
  const planned = plannedRouting(plan);
  const flags = [options.prefix !== "50" ? `--prefix ${options.prefix}` : "", options.confDir ? `--conf-dir ${options.confDir}` : ""].filter(Boolean).join(" ");
  // apply refuses a host where networkd does not run: the fix starts it first.
  const applyCommand = `${live.networkdRunning ? "" : `${START_NETWORKD} && `}gen-networkd apply ${specPath} -o ${options.output}${flags ? ` ${flags}` : ""}`;
  return [
    checkNetworkd(live),
    ...(await checkFiles(specPath, files, dirs, plan.identity, applyCommand)),
    await checkKeys(spec, specPath),
    checkLinks(spec, planned, live),
    await checkNetworkFiles(plan, options.output, live),
    checkRules(planned, live),
    await checkRouteCounts(planned, live, options.output, plan.identity, applyCommand),
    checkTables(planned, live),
    checkShadowing(spec, planned, live),
    checkTailscale(planned, live),
    await checkReversePath(spec, live),
    await checkHandshake(spec, live),
    await checkAllowedIps(spec, specPath, plan, live, applyCommand),
    await checkBootOrder(spec, specPath, live),
    ...(spec.tunnel.dns === undefined ? [] : [await checkDns(spec, plan, live)]),
  ];
}

/** Prints the checklist (or JSON); returns the exit code: 0 all passed, 1 otherwise. */
export function printChecks(checks: readonly Check[], json: boolean, stream: NodeJS.WriteStream = process.stdout): number {
  const failed = checks.filter((c) => c.status === "fail").length;
  if (json) {
    stream.write(`${JSON.stringify({ ok: failed === 0, checks }, null, 2)}\n`);
    return failed === 0 ? 0 : 1;
  }
  const paint = painter(stream);
  const word = { pass: paint("green", "ok"), fail: paint("red", "FAIL"), skip: paint("dim", "skip") };
  const aligned = columns(checks.map((check) => [word[check.status], check.id, check.summary]));
  const lines: string[] = [];
  checks.forEach((check, index) => {
    lines.push(aligned[index]!);
    if (check.status === "fail") lines.push(...check.details.map((d) => `      ${d}`), `      ${paint("bold", `fix: ${check.fix}`)}`);
  });
  lines.push(failed === 0 ? paint("green", `all ${checks.filter((c) => c.status === "pass").length} checks passed`) : paint("red", `${failed} of ${checks.length} checks failed`));
  stream.write(`${lines.join("\n")}\n`);
  return failed === 0 ? 0 : 1;
}

export async function runDoctor(specPath: string, options: DoctorOptions): Promise<number> {
  let live: LiveHost;
  try {
    live = await readLiveHost();
  } catch (error) {
    throw new CommandError(`doctor: cannot read this host's state: ${(error as Error).message}; doctor runs on the host the spec is for (as root for the key file checks)`, 1);
  }
  return printChecks(await doctorChecks(specPath, options, live), options.json ?? false);
}
