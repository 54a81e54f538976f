// Issue 5.2, forwarded traffic: a namespace acting as a docker container sits
// behind bridge ctr0 on H, which forwards and masquerades its traffic (nft). Two
// hosts side by side: split.sources = "all" (the default) also captures what H
// forwards, so the container's TCP to the internet server arrives through the
// tunnel; "local" (IncomingInterface=lo) captures only H's own, so the container's
// arrives directly while H's own still takes the tunnel.

import * as assert from "uvu/assert";
import { labSuite } from "./harness.js";
import { ADDR } from "./lab.js";
import { LeakproofHost, setUpAll } from "./leakproof.js";

const verbose = !!process.env.GEN_NETWORKD_LAB_VERBOSE;
const say = (lines: string[]) => verbose && console.log("\n" + lines.join("\n"));

const TUNNEL_SOURCE = "10.253.0.2";
const CONTAINER = "172.17.0.2";

async function hostWithContainer(tag: string, sources: "all" | "local"): Promise<{ host: LeakproofHost; container: string }> {
  const host = await LeakproofHost.create(tag);
  try {
    await host.generate([{ version: 1, tunnel: { interface: "wg0", addresses: [`${TUNNEL_SOURCE}/32`] }, split: { protocols: ["tcp"], sources } }]);
    await host.start();
    const container = await host.addContainer();
    return { host, container };
  } catch (err) {
    await host.destroy();
    throw err;
  }
}

/** The kernel's answer for a packet the container sends through H (`ip route get … from … iif ctr0`). */
async function forwardedRoute(host: LeakproofHost, dst: string, proto: string): Promise<string> {
  const [route] = JSON.parse(await host.lab.ip("H", ["-j", "route", "get", dst, "from", CONTAINER, "iif", "ctr0", "ipproto", proto]));
  return `${route.table ? `table ${route.table} ` : "table main "}dev ${route.dev}`;
}

interface Observed {
  label: string;
  kernel: string;
  saw: string;
}

async function observe(host: LeakproofHost, container: string): Promise<Observed[]> {
  const [fromContainerInternet, fromContainerLan, fromContainerUdp] = await host.probe(
    [
      { proto: "tcp", host: ADDR.server4 },
      { proto: "tcp", host: ADDR.lanHost4 },
      // The inet segment address: the echo server answers UDP from its primary address,
      // and H's masquerading matches the reply only when it comes from where it was sent.
      { proto: "udp", host: ADDR.serverInet4 },
    ],
    { ns: container },
  );
  const [fromHost] = await host.probe([{ proto: "tcp", host: ADDR.server4 }]);
  const hostRoute = await host.lab.routeGet(ADDR.server4, { ipproto: "tcp", tunnel: "wg0" });
  const seen = (r: { ok: boolean; saw?: string; error?: string } | undefined) => (r?.ok ? r.saw! : `failed: ${r?.error}`);
  return [
    { label: "container TCP to the internet server", kernel: await forwardedRoute(host, ADDR.server4, "tcp"), saw: seen(fromContainerInternet) },
    { label: "container TCP to the LAN host", kernel: await forwardedRoute(host, ADDR.lanHost4, "tcp"), saw: seen(fromContainerLan) },
    { label: "container UDP to the internet server", kernel: await forwardedRoute(host, ADDR.serverInet4, "udp"), saw: seen(fromContainerUdp) },
    { label: "H's own TCP to the internet server", kernel: `table ${hostRoute.table ?? "main"} dev ${hostRoute.dev}`, saw: seen(fromHost) },
  ];
}

const format = (rows: Observed[]) => rows.map((r) => `  ${r.label.padEnd(38)} kernel: ${r.kernel.padEnd(22)} server saw ${r.saw}`);

const t = labSuite(
  "lab: leak-proof 2, a container's forwarded traffic with split.sources",
  async () => {
    const [all, local] = await setUpAll([hostWithContainer("srcall", "all"), hostWithContainer("srclocal", "local")], (c) => c.host.destroy());
    return { all, local };
  },
  async ({ all, local }) => {
    await Promise.all([all.host.destroy(), local.host.destroy()]);
  },
);

t.test("networkd warns about none of the files; \"local\" rules carry iif lo, \"all\" rules none", async ({ all, local }) => {
  assert.equal(await all.host.networkdWarnings(), []);
  assert.equal(await local.host.networkdWarnings(), []);
  const captureRules = async (h: LeakproofHost) => (await h.lab.rules()).filter((r) => r.table === "10086");
  const allRules = await captureRules(all.host);
  const localRules = await captureRules(local.host);
  assert.ok(allRules.length > 0 && allRules.every((r) => r.iif === undefined), JSON.stringify(allRules));
  assert.ok(localRules.length > 0 && localRules.every((r) => r.iif === "lo"), JSON.stringify(localRules));
});

t.test("sources = \"all\": the container's TCP to the internet arrives through the tunnel", async ({ all }) => {
  const rows = await observe(all.host, all.container);
  say(['sources = "all":', ...format(rows)]);
  assert.equal(rows, [
    { label: "container TCP to the internet server", kernel: "table 10086 dev wg0", saw: TUNNEL_SOURCE },
    { label: "container TCP to the LAN host", kernel: "table main dev lan0", saw: ADDR.hostLan4 },
    { label: "container UDP to the internet server", kernel: "table main dev lan0", saw: ADDR.hostLan4 },
    { label: "H's own TCP to the internet server", kernel: "table 10086 dev wg0", saw: TUNNEL_SOURCE },
  ]);
});

t.test("sources = \"local\": the container's TCP to the internet arrives directly, H's own through the tunnel", async ({ local }) => {
  const rows = await observe(local.host, local.container);
  say(['sources = "local":', ...format(rows)]);
  assert.equal(rows, [
    { label: "container TCP to the internet server", kernel: "table main dev lan0", saw: ADDR.hostLan4 },
    { label: "container TCP to the LAN host", kernel: "table main dev lan0", saw: ADDR.hostLan4 },
    { label: "container UDP to the internet server", kernel: "table main dev lan0", saw: ADDR.hostLan4 },
    { label: "H's own TCP to the internet server", kernel: "table 10086 dev wg0", saw: TUNNEL_SOURCE },
  ]);
});

t.run();
