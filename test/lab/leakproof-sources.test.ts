// Issue 5.2, forwarded traffic: a namespace acting as a docker container sits
// behind bridge ctr0 on H, which forwards and masquerades its traffic (nft). Two
// hosts side by side: split.sources = "all" (the default) also captures what H
// forwards, so the container's TCP to the internet server arrives through the
// tunnel; "local" (IncomingInterface=lo) captures only H's own, so the container's
// arrives directly while H's own still takes the tunnel.

import * as assert from "uvu/assert";
import { labSuite } from "./harness.js";
import { ADDR, ECHO_PORT } from "./lab.js";
import { LeakproofHost, setUpAll } from "./leakproof.js";

const verbose = !!process.env.GEN_NETWORKD_LAB_VERBOSE;
const say = (lines: string[]) => verbose && console.log("\n" + lines.join("\n"));

const TUNNEL_SOURCE = "10.253.0.2";
const CONTAINER = "172.17.0.2";
const PUBLISHED = 8080;

async function hostWithContainer(tag: string, sources: "all" | "local"): Promise<{ host: LeakproofHost; container: string }> {
  const host = await LeakproofHost.create(tag);
  try {
    await host.generate([{ version: 1, tunnel: { interface: "wg0", addresses: [`${TUNNEL_SOURCE}/32`] }, split: { protocols: ["tcp"], sources } }]);
    await host.start();
    const container = await host.addContainer({ echo: true });
    // A port published as docker does it: H's 8080 on lan0 forwarded to the container's echo port.
    await host.nft("H", "ip", "labdnat", [`chain pre { type nat hook prerouting priority dstnat; iifname "lan0" tcp dport ${PUBLISHED} dnat to ${CONTAINER}:${ECHO_PORT}; }`]);
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

// A container's reply to a published port is forwarded traffic like any other: the kernel
// routes it (from the container's address, in from ctr0) before conntrack rewrites it back
// to H's LAN address, and split.inbound cannot tell it from the container's own connections.
t.test("a port published with DNAT: answered with sources = \"local\"; with \"all\" the container's reply is captured and never arrives", async ({ all, local }) => {
  const published = async (h: LeakproofHost) => {
    const [r] = await h.probe([{ proto: "tcp", host: ADDR.hostLan4, port: PUBLISHED, timeoutMs: 3000 }], { ns: h.lab.ns.I });
    return r!.ok ? `saw ${r!.saw}` : `failed: ${r!.error}`;
  };
  const [viaAll, viaLocal] = [await published(all.host), await published(local.host)];
  const reply = async (h: LeakproofHost) => forwardedRouteFrom(h, ADDR.serverInet4);
  say([`published port ${PUBLISHED} from the internet server:`, `  sources = "all":   ${viaAll}, the reply's route: ${await reply(all.host)}`, `  sources = "local": ${viaLocal}, the reply's route: ${await reply(local.host)}`]);
  assert.equal(viaLocal, `saw ${ADDR.serverInet4}`);
  assert.equal(await reply(local.host), "table main dev lan0");
  assert.equal(viaAll, "failed: timeout");
  assert.equal(await reply(all.host), "table 10086 dev wg0");
});

/** The kernel's answer for the container's reply to DST (from its address, in from ctr0, from the echo port). */
async function forwardedRouteFrom(host: LeakproofHost, dst: string): Promise<string> {
  const [route] = JSON.parse(await host.lab.ip("H", ["-j", "route", "get", dst, "from", CONTAINER, "iif", "ctr0", "ipproto", "tcp", "sport", String(ECHO_PORT)]));
  return `${route.table ? `table ${route.table} ` : "table main "}dev ${route.dev}`;
}

t.run();
