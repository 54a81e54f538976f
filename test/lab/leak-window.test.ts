// Issue 12.3, no leak window: with killswitch = true no captured packet may leave the
// uplink directly at any moment. examples/laptop.toml (TCP and UDP, both families, kill
// switch) runs in H; a steady stream of captured probe traffic (lab/helpers/stream.mjs: a
// TCP connection and a UDP datagram to the internet server every 5 ms, both families) runs
// while each event happens, and an nft counter on lan0 counts the probes that leave H
// directly. Events: `networkctl reload` (files unchanged, and changed), a networkd restart,
// the tunnel deleted and recreated, and two boots: the uplink configured by networkd itself,
// and by another manager before networkd starts.
//
// Every line of the table is printed (it goes into docs/leakproof.md with the version).

import * as assert from "uvu/assert";
import { readFile, rename } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { labSuite } from "./harness.js";
import { ADDR, ECHO_PORT } from "./lab.js";
import { LeakproofHost } from "./leakproof.js";
import { readSpec } from "./expect.js";
import { Proc } from "./proc.js";
import { systemdArgv } from "./systemd.js";
import { serviceDropInDir } from "../../src/generate.js";
import { parseUnitFile } from "../../src/unitfile.js";

const HELPERS = fileURLToPath(new URL("./helpers/", import.meta.url));
const STREAM_INTERVAL_MS = 5;
/** How long the stream runs before and after each event, so the steady state on both sides is counted too. */
const SETTLE_MS = 300;

interface Host {
  host: LeakproofHost;
  spec: Record<string, any>;
  leaving: () => Promise<number>;
}

interface Measured {
  event: string;
  leaked: number;
  rounds: number;
  answered: number;
  ms: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs the probe stream while EVENT happens; returns how many captured probe packets left through lan0. */
async function during(h: Host, event: string, action: () => Promise<void>): Promise<Measured> {
  const before = await h.leaving();
  const stream = await Proc.start(
    "stream-H",
    h.host.lab.hostArgv([process.execPath, join(HELPERS, "stream.mjs"), String(STREAM_INTERVAL_MS), String(ECHO_PORT), ADDR.server4, ADDR.server6]),
    { logFile: h.host.lab.log("stream-H"), ready: /^ready$/ },
  );
  const started = Date.now();
  try {
    await sleep(SETTLE_MS);
    await action();
    await sleep(SETTLE_MS);
  } finally {
    await stream.stop();
  }
  const stats = JSON.parse(stream.lines.at(-1) ?? "{}") as { rounds: number; tcpAnswered: number; udpAnswered: number };
  const measured = { event, leaked: (await h.leaving()) - before, rounds: stats.rounds, answered: stats.tcpAnswered + stats.udpAnswered, ms: Date.now() - started };
  console.log(`leak window [networkd ${h.host.lab.systemd.version}] ${event}: ${measured.leaked} captured packets left through lan0 (${measured.rounds} rounds in ${measured.ms} ms, ${measured.answered} answers)`);
  return measured;
}

/**
 * Takes H back to before boot: networkd stopped and its stored state gone (a reboot empties
 * PID 1's fd store), the tunnel and the anchor gone, our rules and table flushed, lan0 down
 * without addresses.
 */
async function powerOff(h: Host): Promise<void> {
  const { lab } = h.host;
  await lab.stopNetworkd();
  await lab.emptyFdstore();
  if (await h.host.linkExists("wg0")) await h.host.deleteTunnel("wg0");
  await lab.ip("H", ["link", "del", "wg0-split"]);
  for (const family of ["-4", "-6"]) {
    for (const rule of JSON.parse(await lab.ip("H", [family, "-j", "rule"])) as { priority: number }[]) {
      if (rule.priority > 0 && rule.priority < 32766) await lab.ip("H", [family, "rule", "del", "priority", String(rule.priority)]);
    }
    await lab.ip("H", [family, "route", "flush", "table", "10086"]);
  }
  await lab.ip("H", ["address", "flush", "dev", "lan0"]);
  await lab.ip("H", ["link", "set", "lan0", "down"]);
}

async function boot(h: Host): Promise<void> {
  await h.host.lab.startNetworkd();
  await h.host.lab.waitConfigured(["lan0"]);
  await h.host.startTunnel("wg0");
  await h.host.lab.waitConfigured(await h.host.links());
  await h.host.waitKernelMatchesPlan();
}

const t = labSuite(
  "lab: no leak window with the kill switch (boot, reload, restart, tunnel recreated)",
  async (): Promise<Host> => {
    const spec = await readSpec(fileURLToPath(new URL("../../examples/laptop.toml", import.meta.url)));
    const host = await LeakproofHost.create("leakwin");
    try {
      await host.generate([spec]);
      const leaving = await host.countPackets("H", "leak", "postrouting", [
        `oifname "lan0" ip daddr { ${ADDR.server4}, ${ADDR.serverInet4} } th dport ${ECHO_PORT}`,
        `oifname "lan0" ip6 daddr { ${ADDR.server6}, ${ADDR.serverInet6} } th dport ${ECHO_PORT}`,
      ]);
      await host.start();
      return { host, spec, leaving };
    } catch (err) {
      await host.destroy();
      throw err;
    }
  },
  async (h) => h.host.destroy(),
);

const results: Measured[] = [];

t.test("steady state: the stream goes through the tunnel, nothing leaves through lan0", async (h) => {
  const m = await during(h, "steady state", async () => {
    await sleep(SETTLE_MS);
  });
  results.push(m);
  assert.ok(m.answered > 0, "the stream is answered through the tunnel");
  assert.is(m.leaked, 0);
});

t.test("networkctl reload, files unchanged", async (h) => {
  const m = await during(h, "networkctl reload (unchanged)", async () => {
    await h.host.lab.networkctl(["reload"]);
    await h.host.lab.waitConfigured(await h.host.links());
  });
  results.push(m);
  assert.is(m.leaked, 0);
});

t.test("networkctl reload after the spec changed (an exclusion added)", async (h) => {
  const changed = structuredClone(h.spec);
  changed.split = { ...changed.split, exclude: [...(changed.split?.exclude ?? ["@local"]), "192.0.2.0/24"] };
  const m = await during(h, "networkctl reload (changed)", async () => h.host.regenerateAndReload([changed]));
  results.push(m);
  assert.is(m.leaked, 0);
});

t.test("networkd restarted", async (h) => {
  const m = await during(h, "networkd restart", async () => h.host.restartNetworkd());
  results.push(m);
  assert.is(m.leaked, 0);
});

t.test("the tunnel deleted and recreated", async (h) => {
  const m = await during(h, "wg0 deleted and recreated", async () => {
    await h.host.deleteTunnel("wg0");
    await sleep(SETTLE_MS);
    await h.host.startTunnel("wg0");
    await h.host.lab.waitConfigured(await h.host.links());
    await h.host.waitKernelMatchesPlan();
  });
  results.push(m);
  assert.is(m.leaked, 0);
});

const BOOTS = 5;

t.test(`boot: networkd configures the uplink and the policy (${BOOTS} boots)`, async (h) => {
  for (let i = 1; i <= BOOTS; i++) {
    await powerOff(h);
    const m = await during(h, `boot ${i}/${BOOTS}, uplink by networkd`, async () => boot(h));
    results.push(m);
    assert.is(m.leaked, 0, `boot ${i}`);
  }
});

/** The uplink as another manager (NetworkManager, ifupdown) configures it: not networkd's. */
async function otherManagerConfiguresUplink(h: Host): Promise<void> {
  const { lab } = h.host;
  for (const args of [
    ["link", "set", "lan0", "up"],
    ["address", "add", `${ADDR.hostLan4}/24`, "dev", "lan0"],
    ["address", "add", `${ADDR.hostLan6}/64`, "dev", "lan0", "nodad"],
    ["route", "add", "default", "via", ADDR.routerLan4],
    ["route", "add", "default", "via", ADDR.routerLan6],
  ]) await lab.ip("H", args);
}

/**
 * What the emitted drop-in of split.killswitch_before makes systemd do before the other manager
 * starts (ExecStartPre=, as written; its "-" only ignores a failure): wait until networkd has
 * configured the anchor. The wait must succeed: a timeout would let the manager start anyway.
 */
async function waitAsTheDropInSays(h: Host): Promise<void> {
  const { lab } = h.host;
  const path = join(serviceDropInDir(h.host.confDir, "NetworkManager.service"), "50-wg0-split.conf");
  const sections = parseUnitFile(await readFile(path, "utf8"));
  const values = (name: string, key: string) => sections.filter((s) => s.name === name).flatMap((s) => s.entries.filter((e) => e.key === key).map((e) => String(e.value)));
  assert.equal([values("Unit", "Wants"), values("Unit", "After")], [["systemd-networkd.service"], ["systemd-networkd.service"]], `${path}: ordered after networkd`);
  const [command] = values("Service", "ExecStartPre");
  assert.match(command!, /^-\/usr\/lib\/systemd\/systemd-networkd-wait-online --interface=wg0-split:no-carrier --timeout=30$/);
  await lab.inHost(systemdArgv(lab.systemd, command!.slice(1).split(" ")), { timeoutMs: 35_000 });
}

t.test("boot: another manager configures the uplink before networkd has configured the anchor: the window, counted", async (h) => {
  await powerOff(h);
  const { lab } = h.host;
  // The uplink is not networkd's now: its .network is moved away (networkd then leaves lan0 alone).
  await rename(join(lab.etcDir, "10-lab-lan0.network"), join(lab.work, "lan0.network.off"));
  const m = await during(h, "boot, uplink by another manager first", async () => {
    await otherManagerConfiguresUplink(h);
    await sleep(SETTLE_MS);
    await lab.startNetworkd();
    await h.host.startTunnel("wg0");
    await lab.waitConfigured((await h.host.links()).filter((l) => l !== "lan0"));
    await h.host.waitKernelMatchesPlan();
  });
  results.push(m);
  assert.ok(m.leaked > 0, `networkd ${lab.systemd.version}: nothing networkd is given can act before networkd runs, so captured packets leave until it has configured the anchor (counted ${m.leaked})`);
});

t.test("boot: another manager started as the emitted drop-in of split.killswitch_before orders it (after wait-online for the anchor): nothing leaves", async (h) => {
  await powerOff(h);
  const { lab } = h.host;
  const m = await during(h, "boot, uplink by another manager ordered by the killswitch_before drop-in", async () => {
    await lab.startNetworkd();
    await waitAsTheDropInSays(h);
    await otherManagerConfiguresUplink(h);
    await sleep(SETTLE_MS);
    await h.host.startTunnel("wg0");
    await lab.waitConfigured((await h.host.links()).filter((l) => l !== "lan0"));
    await h.host.waitKernelMatchesPlan();
  });
  results.push(m);
  assert.is(m.leaked, 0);
  assert.ok(m.answered > 0, "and the stream flows through the tunnel once it is up");
});

t.run();
