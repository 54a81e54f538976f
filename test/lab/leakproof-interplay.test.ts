// Two specs side by side where one captures UDP: wg0's spec captures TCP, wg1's
// (priority 9000, before wg0's) captures UDP with a kill switch. wg1's mark rule
// keeps only wg1's own packets out of its capture, so wg0's encrypted packets to
// its endpoint are UDP like any other: they are captured into wg1 (wg0 then runs
// inside wg1), and when wg1 goes away its kill switch cuts wg0 off too. Listing
// wg0's endpoint in wg1's split.exclude keeps them direct. Two hosts side by side:
// without that exclusion (the limitation, pinned) and with it (the workaround).

import * as assert from "uvu/assert";
import { labSuite } from "./harness.js";
import { ADDR } from "./lab.js";
import { LeakproofHost, setUpAll } from "./leakproof.js";

const verbose = !!process.env.GEN_NETWORKD_LAB_VERBOSE;
const say = (lines: string[]) => verbose && console.log("\n" + lines.join("\n"));

const WG0_SOURCE = "10.253.0.2";

const specs = (wg1Exclude: string[]) => [
  { version: 1, tunnel: { interface: "wg0", addresses: [`${WG0_SOURCE}/32`] }, split: { protocols: ["tcp"], ipv6: "direct" } },
  {
    version: 1,
    tunnel: { interface: "wg1", addresses: ["10.254.0.2/32"] },
    // Before wg0's rules, so it captures every source: its inbound rules would answer wg0's lookups from main.
    split: { protocols: ["udp"], ipv6: "direct", table: 20000, priority: 9000, killswitch: true, exclude: wg1Exclude, inbound: "capture" },
  },
];

async function twoTunnels(tag: string, wg1Exclude: string[]): Promise<LeakproofHost> {
  const host = await LeakproofHost.create(tag);
  try {
    await host.generate(specs(wg1Exclude));
    await host.start();
    return host;
  } catch (err) {
    await host.destroy();
    throw err;
  }
}

/** Where wg0's own encrypted packets go (`ip route get ENDPOINT ipproto udp dport PORT`), and whether TCP through wg0 works once wg1 is deleted. */
async function observe(host: LeakproofHost, label: string): Promise<{ wg0Packets: string; afterWg1Deleted: string }> {
  const d = await host.lab.routeGet(ADDR.peerInet4, { ipproto: "udp", dport: ADDR.peerPort, tunnel: "wg1" });
  const wg0Packets = `table ${d.table ?? "main"} dev ${d.dev}`;
  const [before] = await host.probe([{ proto: "tcp", host: ADDR.server4 }]);
  assert.equal(before!.saw, WG0_SOURCE, `${label}: TCP goes through wg0 while both tunnels are up`);
  await host.deleteTunnel("wg1");
  // wg0's session is still valid; what matters is whether its encrypted packets still get out.
  const [after] = await host.probe([{ proto: "tcp", host: ADDR.server4 }]);
  const afterWg1Deleted = after!.ok ? `server saw ${after!.saw}` : `failed: ${after!.error}`;
  say([`${label}: wg0's own packets: ${wg0Packets}; TCP through wg0 after wg1 was deleted: ${afterWg1Deleted}`]);
  return { wg0Packets, afterWg1Deleted };
}

const t = labSuite(
  "lab: leak-proof, two specs where one captures UDP",
  async () => {
    const [plain, excluded] = await setUpAll([twoTunnels("udpnoex", ["@local"]), twoTunnels("udpex", ["@local", `${ADDR.peerInet4}/32`])], (h) => h.destroy());
    return { plain, excluded };
  },
  async ({ plain, excluded }) => {
    await Promise.all([plain.destroy(), excluded.destroy()]);
  },
);

t.test("limitation: without an exclusion, wg1's UDP capture takes wg0's encrypted packets, and wg1's kill switch cuts wg0 off", async ({ plain }) => {
  const seen = await observe(plain, "wg0's endpoint not excluded from wg1's split");
  assert.equal(seen.wg0Packets, "table 20000 dev wg1");
  assert.equal(seen.afterWg1Deleted, "failed: timeout");
});

t.test("workaround: wg0's endpoint in wg1's split.exclude keeps wg0's packets direct; wg0 outlives wg1", async ({ excluded }) => {
  const seen = await observe(excluded, "wg0's endpoint excluded from wg1's split");
  assert.equal(seen.wg0Packets, "table main dev lan0");
  assert.equal(seen.afterWg1Deleted, `server saw ${WG0_SOURCE}`);
});

t.run();
