// doctor's checks against a hand-made live host: the seed spec's files written to
// a temp directory, the kernel state the plan asks for (plus the kernel's own
// rules), then one fault at a time. The lab (test/lab/doctor.test.ts) does the same
// against the real networkd and kernel.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { doctorChecks, enabledServicesIn, type Check, type LiveHost } from "../src/doctor.js";
import { generate } from "../src/generate.js";
import type { LinkInfo } from "../src/host-state.js";
import { plannedRouting } from "../src/plan-routing.js";
import { prefixOf } from "./prefix-of.js";
import type { Route, Rule, RoutingState } from "../src/route-model.js";
import { applyChanges, diffAgainstDisk } from "../src/write.js";

const root = new URL("..", import.meta.url).pathname;
const NOW = 1_800_000_000_000;

interface World {
  work: string;
  spec: string;
  live: LiveHost;
}

/** A host where the seed spec is applied and healthy; OVERRIDE changes one part of it. */
async function world(override: (state: { rules: Rule[]; routes: Route[]; live: Partial<LiveHost>; work: string }) => void = () => {}, editSpec: (toml: string) => string = (toml) => toml): Promise<World> {
  const work = mkdtempSync(join(tmpdir(), "gen-networkd-doctor-"));
  chmodSync(work, 0o755); // mkdtemp makes it 0700, which networkd (systemd-network) could not enter
  const spec = join(work, "spec.toml");
  writeFileSync(spec, editSpec(readFileSync(join(root, "examples/seed.toml"), "utf8")));
  const { plan, files } = await generate(spec, { outputDir: join(work, "net"), prefix: "50" });
  await applyChanges(await diffAgainstDisk(files, plan.identity), { force: false });
  const planned = plannedRouting(plan);
  const kernel = (family: 4 | 6, priority: number, table: number): Rule => ({ family, priority, action: { kind: "lookup", table }, origin: "host" });
  const rules: Rule[] = [kernel(4, 0, 255), kernel(4, 32766, 254), kernel(4, 32767, 253), kernel(6, 0, 255), kernel(6, 32766, 254), ...planned.rules.map((r) => ({ ...r, origin: "host" as const }))];
  const routes: Route[] = [
    { family: 4, table: 254, dst: prefixOf("0.0.0.0/0"), type: "unicast", dev: "eth0", gateway: "192.168.1.1", metric: 0, origin: "host" },
    { family: 4, table: 254, dst: prefixOf("192.168.1.0/24"), type: "unicast", dev: "eth0", metric: 0, origin: "host" },
    ...planned.routes,
    ...planned.addressRoutes,
  ];
  const live: Partial<LiveHost> = {
    links: new Map([
      ["eth0", { name: "eth0", up: true, addresses: ["192.168.1.2/24"] }],
      ["wg0", { name: "wg0", up: true, addresses: ["10.253.0.2/32"], networkdState: "configured", networkFile: join(work, "net/50-wg0.network") }],
      ["wg0-split", { name: "wg0-split", up: true, addresses: [], networkdState: "configured", networkFile: join(work, "net/50-wg0-split.network") }],
    ]),
    networkdRunning: true,
    sysctl: async (...segments: string[]) => (segments.at(-1) === "rp_filter" ? "2" : undefined),
    wireguardDump: async () => `priv\tpub\t51820\toff\n4kQT3smJgD94joC+o+whDz6zEdg42kZIryzw0Rw2w24=\t(none)\t198.51.100.7:51820\t0.0.0.0/0\t${NOW / 1000 - 30}\t100\t200\t25\n`,
    now: NOW,
    networkdDirs: [],
    enabledServices: async () => [],
  };
  const state = { rules, routes, live, work };
  override(state);
  const host: RoutingState = { rules: state.rules, routes: state.routes };
  return { work, spec, live: { ...(state.live as LiveHost), state: host } };
}

async function checks(w: World): Promise<Record<string, Check>> {
  try {
    const list = await doctorChecks(w.spec, { output: join(w.work, "net"), prefix: "50" }, w.live);
    return Object.fromEntries(list.map((c) => [c.id, c]));
  } finally {
    rmSync(w.work, { recursive: true, force: true });
  }
}

const statuses = (all: Record<string, Check>) => Object.fromEntries(Object.entries(all).filter(([id]) => id !== "key-file").map(([id, c]) => [id, c.status]));

test("a healthy host: every check passes (key-file depends on this machine: the lab checks it); tailscale is skipped when absent", async () => {
  const all = await checks(await world());
  assert.equal(statuses(all), { networkd: "pass", files: "pass", "file-modes": "pass", links: "pass", rules: "pass", "route-count": "pass", tables: "pass", shadowing: "pass", tailscale: "skip", "rp-filter": "pass", handshake: "pass", "allowed-ips": "pass", "boot-order": "skip", "network-files": "pass" });
});

test("boot-order: with the kill switch, an enabled network manager not in split.killswitch_before fails, with the key to add; ordered or absent passes", async () => {
  const withKillswitch = (extra: string) => (toml: string) => toml.replace(/^\[split\]$/m, `[split]\nkillswitch = true\n${extra}`);
  const enabled = (names: string[]) => (state: { live: Partial<LiveHost> }) => void (state.live = { ...state.live, enabledServices: async (asked) => asked.filter((n) => names.includes(n)) });
  const racing = (await checks(await world(enabled(["NetworkManager.service", "getty@tty1.service"]), withKillswitch(""))))["boot-order"]!;
  assert.is(racing.status, "fail");
  assert.equal(racing.details, ["NetworkManager.service: enabled, not in split.killswitch_before"]);
  assert.match(racing.fix!, /^add "NetworkManager\.service" to split\.killswitch_before in \S+spec\.toml, then apply$/);
  const ordered = (await checks(await world(enabled(["NetworkManager.service"]), withKillswitch('killswitch_before = ["NetworkManager.service"]\n'))))["boot-order"]!;
  assert.is(ordered.status, "pass", ordered.summary);
  assert.is(ordered.summary, "NetworkManager.service starts only once networkd has configured the anchor (split.killswitch_before)");
  const alone = (await checks(await world(enabled([]), withKillswitch(""))))["boot-order"]!;
  assert.equal([alone.status, alone.summary], ["pass", "no other network manager is enabled"]);
});

test("enabled services are those some unit's .wants or .requires directory links, dangling links too", async () => {
  const dir = mkdtempSync(join(tmpdir(), "gen-networkd-units-"));
  mkdirSync(join(dir, "multi-user.target.wants"));
  mkdirSync(join(dir, "network-online.target.requires"));
  symlinkSync("/usr/lib/systemd/system/NetworkManager.service", join(dir, "multi-user.target.wants/NetworkManager.service"));
  symlinkSync("/nonexistent/networking.service", join(dir, "network-online.target.requires/networking.service"));
  writeFileSync(join(dir, "connman.service"), "[Service]\n"); // a unit file, not enabled
  assert.equal(await enabledServicesIn(dir, ["NetworkManager.service", "networking.service", "connman.service", "wicked.service"]), ["NetworkManager.service", "networking.service"]);
  assert.equal(await enabledServicesIn(join(dir, "absent"), ["NetworkManager.service"]), []);
  rmSync(dir, { recursive: true, force: true });
});

test("network-files: networkd configures wg0 from an earlier file; doctor names it, why, and the fix", async () => {
  const all = await checks(
    await world((state) => {
      const etc = join(state.work, "etc");
      mkdirSync(etc);
      writeFileSync(join(etc, "10-wg0.network"), "[Match]\nName=wg0\n\n[Network]\nAddress=10.99.0.2/32\n");
      (state.live as { networkdDirs: string[] }).networkdDirs = [etc];
      const links = state.live.links as Map<string, LinkInfo>;
      links.set("wg0", { ...links.get("wg0")!, networkFile: join(etc, "10-wg0.network") });
    }),
  );
  const check = all["network-files"]!;
  assert.is(check.status, "fail");
  assert.match(check.details[0]!, /^networkd configures wg0 from \S+\/etc\/10-wg0\.network, not from \S+\/net\/50-wg0\.network: \S+\/etc\/10-wg0\.network sorts before 50-wg0\.network and its \[Match\] Name=wg0 matches wg0$/);
  assert.is(check.details.length, 1, "wg0-split is configured from ours");
  assert.is(check.fix, "regenerate ours with --prefix 09 (sorting before it), or rename, mask or narrow the [Match] of theirs; then networkctl reload");
});

test("network-files: a link networkd applies no file to fails; links that do not exist or have no networkd state are skipped", async () => {
  const unmanaged = await checks(
    await world((state) => {
      const links = state.live.links as Map<string, LinkInfo>;
      links.set("wg0", { name: "wg0", up: true, addresses: [], networkdState: "unmanaged" });
    }),
  );
  assert.is(unmanaged["network-files"]!.status, "fail");
  assert.match(unmanaged["network-files"]!.details[0]!, /^networkd configures wg0 from no \.network file \(its state is "unmanaged"\), not from \S+\/net\/50-wg0\.network$/);
  assert.match(unmanaged["network-files"]!.fix!, /^networkctl reload/);
  const absent = await checks(
    await world((state) => {
      const links = state.live.links as Map<string, LinkInfo>;
      links.delete("wg0");
      links.set("wg0-split", { name: "wg0-split", up: true, addresses: [] });
    }),
  );
  assert.is(absent["network-files"]!.status, "skip");
  assert.is(absent["network-files"]!.summary, "no link of ours to check: wg0 does not exist; networkd has no state for wg0-split");
});

test("an earlier foreign rule that takes the captured traffic: shadowing, with the rule and the fix", async () => {
  const all = await checks(
    await world(({ rules, routes }) => {
      rules.push({ family: 4, priority: 100, ipproto: 6, action: { kind: "lookup", table: 100 }, origin: "host" });
      routes.push({ family: 4, table: 100, dst: prefixOf("0.0.0.0/0"), type: "unicast", dev: "eth1", metric: 0, origin: "host" });
    }),
  );
  assert.is(all.shadowing!.status, "fail");
  assert.match(all.shadowing!.details.join("\n"), /tcp IPv4 flows are decided by ipv4 100: from all ipproto tcp lookup 100 before ours \(10086\)/);
  assert.is(all.shadowing!.fix, "ip -4 rule del priority 100 from all ipproto tcp lookup 100 (or move it after 10086)");
  assert.is(all.rules!.status, "pass", "a rule on another table at another priority is not ours to judge");
});

test("an earlier foreign rule that finds nothing for the captured traffic does not shadow it", async () => {
  const all = await checks(
    await world(({ rules }) => {
      rules.push({ family: 4, priority: 100, action: { kind: "lookup", table: 52 }, origin: "host" });
    }),
  );
  assert.is(all.shadowing!.status, "pass");
});

test("tailscale present: its rules must be there and before ours", async () => {
  const tailscale = (state: { rules: Rule[]; live: Partial<LiveHost> }) => {
    (state.live.links as Map<string, unknown>).set("tailscale0", { name: "tailscale0", up: true, addresses: ["100.80.0.2/32"] });
  };
  const gone = await checks(await world(tailscale));
  assert.is(gone.tailscale!.status, "fail");
  assert.equal(gone.tailscale!.details, ["no IPv4 rule looks up table 52: tailnet traffic follows our rules and main instead", "no IPv6 rule looks up table 52: tailnet traffic follows our rules and main instead"]);
  const withRules = (state: { rules: Rule[]; live: Partial<LiveHost> }) => {
    tailscale(state);
    for (const family of [4, 6] as const) state.rules.push({ family, priority: 5270, action: { kind: "lookup", table: 52 }, origin: "host" });
  };
  assert.is((await checks(await world(withRules))).tailscale!.status, "pass");
  const early = await checks(
    await world((state) => {
      withRules(state);
      state.rules.push({ family: 4, priority: 5000, ipproto: 6, action: { kind: "lookup", table: 10086 }, origin: "host" });
    }),
  );
  assert.is(early.tailscale!.status, "fail");
  assert.equal(early.tailscale!.details, ["ipv4 5000: from all ipproto tcp lookup 10086 precedes tailscale's rule 5270"]);
  assert.is(early.rules!.status, "fail", "and it is a rule on our table that the plan does not have");
});

test("rules and tables: missing and unplanned entries, fixed by reconfiguring the link that carries them", async () => {
  const all = await checks(
    await world(({ rules, routes }) => {
      rules.splice(rules.findIndex((r) => r.family === 6 && r.priority === 10089), 1);
      routes.splice(routes.findIndex((r) => r.table === 10086 && r.type === "unicast"), 1);
      routes.push({ family: 4, table: 10086, dst: prefixOf("198.18.0.0/15"), type: "throw", metric: 0, origin: "host" });
    }),
  );
  assert.equal(all.rules!.details, ["missing: ipv6 10089: from all ipproto tcp lookup 10086"]);
  assert.is(all.rules!.fix, "networkctl reconfigure wg0-split");
  assert.equal(all.tables!.details, ["missing: ipv4 table 10086: 0.0.0.0/0 dev wg0 metric 0", "not planned: ipv4 table 10086: throw 198.18.0.0/15 metric 0"]);
  assert.is(all.tables!.fix, "networkctl reconfigure wg0");
});

test("route-count: a table short of routes, with the cause doctor can see", async () => {
  const dropThrows = ({ routes }: { routes: Route[] }) => {
    for (let i = routes.length - 1; i >= 0; i--) if (routes[i]!.type === "throw" && routes[i]!.family === 4) routes.splice(i, 1);
  };
  // Deleted by hand: nothing on disk or in networkd explains it.
  const deleted = await checks(await world(dropThrows));
  assert.is(deleted["route-count"]!.status, "fail");
  assert.match(deleted["route-count"]!.summary, /fewer routes than planned \(1 of 9 10086 ipv4\)/);
  assert.match(deleted["route-count"]!.details.join("\n"), /cause: not visible here: routes were deleted/);
  assert.match(deleted["route-count"]!.fix!, /^systemctl restart systemd-networkd /);

  // A failed anchor link: its state file says so, links and route-count both name it.
  const failed = await checks(
    await world((state) => {
      dropThrows(state);
      (state.live.links as Map<string, unknown>).set("wg0-split", { name: "wg0-split", up: true, addresses: [], networkdState: "failed" });
    }),
  );
  assert.is(failed.links!.status, "fail");
  assert.match(failed.links!.details.join("\n"), /wg0-split: networkd failed configuring it/);
  assert.match(failed["route-count"]!.details.join("\n"), /cause: networkd failed wg0-split/);

  // The old single-file output: one .network with more routes than networkd takes from a file.
  const w = await world(dropThrows);
  const anchorFile = join(w.work, "net", "50-wg0-split.network");
  const extra = Array.from({ length: 8193 }, (_, i) => `[Route]\nType=throw\nDestination=10.${i >> 8}.${i & 255}.0/24\nTable=10086\n`).join("\n");
  writeFileSync(anchorFile, `${readFileSync(anchorFile, "utf8")}\n${extra}`);
  const oversized = await checks(w);
  assert.match(oversized["route-count"]!.details.join("\n"), /cause: .*50-wg0-split\.network holds 8206 routes; networkd 257 and later .* at most 8192/);
  assert.match(oversized["route-count"]!.fix!, /^gen-networkd apply .* spreads the routes over several anchor links/);
});

test("links: down, missing, without an address", async () => {
  const all = await checks(
    await world(({ live }) => {
      const links = live.links as Map<string, { name: string; up: boolean; addresses: string[] }>;
      links.set("wg0", { name: "wg0", up: false, addresses: [] });
      links.delete("wg0-split");
    }),
  );
  assert.equal(all.links!.details, ["wg0 is down", "wg0 lacks 10.253.0.2/32", "wg0-split does not exist"]);
  assert.is(all.links!.fix, "networkctl up wg0 && networkctl reconfigure wg0");
});

test("rp_filter: strict only when the larger of all and the link is 1", async () => {
  const strict = (values: Record<string, string>) => (live: Partial<LiveHost>) => (live.sysctl = async (...segments: string[]) => values[segments[3]!]);
  const rp = async (values: Record<string, string>) => (await checks(await world(({ live }) => strict(values)(live))))["rp-filter"]!.status;
  assert.is(await rp({ all: "1", wg0: "1" }), "fail");
  assert.is(await rp({ all: "0", wg0: "1" }), "fail");
  assert.is(await rp({ all: "1", wg0: "2" }), "pass");
  assert.is(await rp({ all: "0", default: "1" }), "fail", "a link without its own value (not there yet) gets default's");
});

test("handshake: a silent keepalive peer fails; an idle peer without keepalive passes; no wg skips", async () => {
  const dump = (latest: number, keepalive: string) => async () => `priv\tpub\t51820\toff\nKEY\t(none)\t198.51.100.7:51820\t0.0.0.0/0\t${latest}\t0\t0\t${keepalive}\n`;
  const handshake = async (wireguardDump: LiveHost["wireguardDump"]) => (await checks(await world(({ live }) => (live.wireguardDump = wireguardDump)))).handshake!;
  const never = await handshake(dump(0, "25"));
  assert.equal([never.status, never.details], ["fail", ["peer KEY… (198.51.100.7:51820): no handshake yet"]]);
  const old = await handshake(dump(NOW / 1000 - 600, "25"));
  assert.equal([old.status, old.details], ["fail", ["peer KEY… (198.51.100.7:51820): last handshake 600 s ago"]]);
  const idle = await handshake(dump(0, "off"));
  assert.equal([idle.status, idle.summary], ["pass", "0 of 1 peers with a recent handshake, 1 idle without keepalive"]);
  assert.is((await handshake(async () => undefined)).status, "skip");
});

test("files: a stale file after a spec edit, and a wrong mode, each with its fix", async () => {
  const w = await world();
  writeFileSync(w.spec, readFileSync(w.spec, "utf8").replace('exclude = ["@local"]', 'exclude = ["@local", "198.18.0.0/15"]'));
  const { chmodSync } = await import("node:fs");
  chmodSync(join(w.work, "net/50-wg0.netdev"), 0o600);
  const all = await checks(w);
  assert.is(all.files!.status, "fail");
  assert.match(all.files!.details.join("\n"), /stale: .*50-wg0-split\.network \(.*spec\.toml changed since it was generated\)/);
  assert.match(all.files!.fix!, /^gen-networkd apply .*spec\.toml -o .*net$/);
  assert.equal(all["file-modes"]!.details, [`${join(w.work, "net/50-wg0.netdev")} has mode 0600`]);
});

test("file-modes: every directory on the path must let networkd in (0755), each named with its fix", async () => {
  const w = await world();
  chmodSync(join(w.work, "net/networkd.conf.d"), 0o700);
  chmodSync(w.work, 0o750);
  const all = await checks(w);
  assert.is(all["file-modes"]!.status, "fail");
  assert.equal(all["file-modes"]!.details, [
    `${w.work} has mode 0750 (networkd, as user systemd-network, cannot enter it)`,
    `${join(w.work, "net/networkd.conf.d")} has mode 0700 (networkd, as user systemd-network, cannot list it)`,
  ]);
  assert.match(all["file-modes"]!.fix!, new RegExp(`chmod o\\+x ${w.work}.*chmod 0755 ${join(w.work, "net/networkd.conf.d")}`));
});

// The seed spec with the tunnel's resolver (every name, "~."), on a host where resolved runs and lists it.
const withDns = (toml: string) => toml.replace(/^\[tunnel\]\n/m, '[tunnel]\ndns = ["10.253.0.1"]\n');
const resolvedHealthy = (live: Partial<LiveHost>) => {
  live.resolvedServers = async () => ({ servers: new Map([["Global", []], ["eth0", ["192.168.1.1"]], ["wg0", ["10.253.0.1"]]]) });
  live.resolvConf = async () => ({ target: "../run/systemd/resolve/stub-resolv.conf", nameservers: ["127.0.0.53"] });
};
const dnsCheck = async (change: (live: Partial<LiveHost>) => void = () => {}) =>
  (await checks(await world(({ live }) => (resolvedHealthy(live), change(live)), withDns))).dns!;

test("tunnel.dns: resolved lists the resolver for wg0 and /etc/resolv.conf is its stub: dns passes; without tunnel.dns there is no dns check", async () => {
  const dns = await dnsCheck();
  assert.is(dns.status, "pass", dns.details.join("\n"));
  assert.match(dns.summary, /lists 10\.253\.0\.1 for wg0/);
  assert.is((await checks(await world(({ live }) => resolvedHealthy(live)))).dns, undefined);
});

test("tunnel.dns without systemd-resolved: nothing uses the keys, and the fix says how (resolved, or resolv.conf naming the tunnel's resolver)", async () => {
  const dns = await dnsCheck((live) => {
    live.resolvedServers = async () => ({ unavailable: "resolvectl is not installed (no systemd-resolved)", installed: false });
    live.resolvConf = async () => ({ nameservers: ["192.168.1.1"] });
  });
  assert.is(dns.status, "fail");
  assert.match(dns.summary, /^nothing uses tunnel\.dns: resolvectl is not installed/);
  assert.equal(dns.details, ["/etc/resolv.conf names 192.168.1.1"]);
  assert.match(dns.fix!, /apt install systemd-resolved .*nameserver 10\.253\.0\.1/);
});

test("tunnel.dns: resolved lists other servers for wg0, or applications bypass resolved: dns fails with the matching fix", async () => {
  const wrong = await dnsCheck((live) => (live.resolvedServers = async () => ({ servers: new Map([["eth0", ["192.168.1.1"]], ["wg0", []]]) })));
  assert.is(wrong.status, "fail");
  assert.equal(wrong.details, ["resolved lists no servers for wg0, not 10.253.0.1"]);
  assert.is(wrong.fix, "networkctl reconfigure wg0");
  const bypass = await dnsCheck((live) => (live.resolvConf = async () => ({ nameservers: ["192.168.1.1"] })));
  assert.is(bypass.status, "fail");
  assert.equal(bypass.details, ["applications do not ask resolved: /etc/resolv.conf names 192.168.1.1, not resolved's stub 127.0.0.53"]);
  assert.is(bypass.fix, "ln -sf /run/systemd/resolve/stub-resolv.conf /etc/resolv.conf");
});

test("resolvectl dns output is read with its suffixes (%ifindex, #server name) dropped", async () => {
  const { parseResolvectlDns } = await import("../src/doctor.js");
  const text = "Global: 10.253.0.1\nLink 2 (lan0): 192.168.50.1 fd00::1%2#dns.example\nLink 3 (wg0-split):\n";
  assert.equal([...parseResolvectlDns(text)], [["Global", ["10.253.0.1"]], ["lan0", ["192.168.50.1", "fd00::1"]], ["wg0-split", []]]);
});

test("item 16: with no generated file, file-modes does not pass (it has nothing to vouch for)", async () => {
  const w = await world();
  rmSync(join(w.work, "net"), { recursive: true, force: true });
  const all = await checks(w);
  assert.is(all.files!.status, "fail");
  assert.is(all["file-modes"]!.status, "skip");
  assert.match(all["file-modes"]!.summary, /no generated file present/);
});

test("item 16: rp-filter does not pass when the tunnel interface does not exist", async () => {
  const all = await checks(await world((s) => (s.live.links as Map<string, unknown>).delete("wg0")));
  assert.is(all.links!.status, "fail");
  assert.is(all["rp-filter"]!.status, "skip");
  assert.match(all["rp-filter"]!.summary, /wg0 does not exist/);
});

test("item 16: networkd not running: networkd fails with the start as its fix, and no other fix asks the absent networkd to reload or reconfigure", async () => {
  const stopped = (live: Partial<LiveHost>) => ((live as { networkdRunning: boolean }).networkdRunning = false);
  const healthy = await checks(await world((state) => stopped(state.live)));
  assert.is(healthy.networkd!.status, "fail");
  assert.is(healthy.networkd!.fix, "systemctl enable --now systemd-networkd");
  assert.equal(Object.values(healthy).filter((c) => c.status === "fail" && c.id !== "key-file").map((c) => c.id), ["networkd"], "what networkd configured before it stopped is still in the kernel");

  // Every fault whose fix goes through networkd (the unit tests above, with networkd running).
  const w = await world((state) => {
    stopped(state.live);
    state.rules.splice(state.rules.findIndex((r) => r.family === 6 && r.priority === 10089), 1);
    state.routes.splice(state.routes.findIndex((r) => r.table === 10086 && r.type === "unicast"), 1);
    for (let i = state.routes.length - 1; i >= 0; i--) if (state.routes[i]!.type === "throw" && state.routes[i]!.family === 4) state.routes.splice(i, 1);
    (state.live.links as Map<string, unknown>).delete("wg0-split");
  });
  writeFileSync(w.spec, readFileSync(w.spec, "utf8").replace('exclude = ["@local"]', 'exclude = ["@local", "198.18.0.0/15"]'));
  const sick = await checks(w);
  // key-file depends on this machine (see statuses).
  const failed = Object.values(sick).filter((c) => c.status === "fail" && c.id !== "key-file");
  assert.equal(failed.map((c) => c.id), ["networkd", "files", "links", "rules", "route-count", "tables"]);
  for (const check of failed) assert.not.match(check.fix!, /networkctl|systemctl restart systemd-networkd/, `${check.id}: ${check.fix}`);
  assert.is(sick.links!.fix, "systemctl enable --now systemd-networkd");
  assert.is(sick.rules!.fix, "systemctl enable --now systemd-networkd");
  assert.match(sick.files!.fix!, /^systemctl enable --now systemd-networkd && gen-networkd apply /, "apply refuses a host without networkd: start it first");
});

/** `wg show wg0 dump` with one peer whose allowed ips are ALLOWED. */
const dumpAllowing = (allowed: string) => async () => `priv\tpub\t51820\toff\nKEY\t(none)\t198.51.100.7:51820\t${allowed}\t${NOW / 1000 - 30}\t0\t0\t25\n`;

test("item 16: allowed-ips: the live peers' allowed ips must hold what the plan sends into wg0 (blocked IPv6 needs none)", async () => {
  const narrow = (await checks(await world(({ live }) => (live.wireguardDump = dumpAllowing("10.253.0.0/24")))))["allowed-ips"]!;
  assert.is(narrow.status, "fail");
  assert.match(narrow.summary, /no peer of wg0 has these captured destinations in its allowed ips, so WireGuard drops what is sent to them/);
  assert.equal(narrow.details.length, 1);
  assert.match(narrow.details[0]!, /^IPv4 0\.0\.0\.0\/5, 8\.0\.0\.0\/7, 11\.0\.0\.0\/8 and \d+ more prefixes$/);
  assert.match(narrow.fix!, /^add them to a peer's allowed_ips in .*spec\.toml \(e\.g\. "0\.0\.0\.0\/0"\), then gen-networkd apply /);
  assert.is((await checks(await world(({ live }) => (live.wireguardDump = dumpAllowing("0.0.0.0/1,128.0.0.0/1")))))["allowed-ips"]!.status, "pass");
  assert.is((await checks(await world(({ live }) => (live.wireguardDump = dumpAllowing("(none)")))))["allowed-ips"]!.status, "fail");
});

test("item 16: allowed-ips of an unmanaged tunnel: the fix is wg's; without wg the check is skipped", async () => {
  const unmanaged = (toml: string) => toml.replace("manage = true", "manage = false").replace(/^(private_key_file|listen_port) = .*\n/gm, "").replace(/\[\[tunnel\.peers\]\][\s\S]*?(?=\n\[split\])/, "");
  const narrow = (await checks(await world(({ live }) => (live.wireguardDump = dumpAllowing("10.253.0.0/24")), unmanaged)))["allowed-ips"]!;
  assert.is(narrow.status, "fail");
  assert.is(narrow.fix, "add them to a peer's AllowedIPs where wg0 is configured (e.g. wg set wg0 peer PUBLIC_KEY allowed-ips 0.0.0.0/0), keeping its Table = off");
  const noWg = (await checks(await world(({ live }) => (live.wireguardDump = async () => undefined), unmanaged)))["allowed-ips"]!;
  assert.equal([noWg.status, noWg.summary], ["skip", "wg is not installed (wireguard-tools)"]);
});

test.run();
