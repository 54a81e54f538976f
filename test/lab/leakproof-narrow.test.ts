// Issue 5.5, narrower splits: split.users (User=), split.ports (DestinationPort=)
// and split.include. Real TCP clients run in H as several uids (setpriv) to
// several ports and destinations; each path is asked of the kernel (`ip route get
// … uid U dport P`) and taken for real (the server tells the source it saw).
// Two hosts side by side:
//   - examples/per-user.toml as written: uid 995's TCP to ports 80 and 443, from
//     this host only, towards two included networks minus the peer's endpoint;
//   - a spec with a uid range, a port range and one included network, so a
//     destination outside include exists in the lab.

import * as assert from "uvu/assert";
import { fileURLToPath } from "node:url";
import { labSuite } from "./harness.js";
import { ADDR, ECHO_PORT } from "./lab.js";
import { LeakproofHost, setUpAll } from "./leakproof.js";
import { readSpec } from "./expect.js";

const verbose = !!process.env.GEN_NETWORKD_LAB_VERBOSE;
const say = (lines: string[]) => verbose && console.log("\n" + lines.join("\n"));

const WEB_PORTS = [80, 443];

interface Flow {
  uid: number;
  port: number;
  dst: string;
}

interface Row extends Flow {
  kernel: string;
  result: string;
}

async function narrowHost(tag: string, spec: Record<string, any>): Promise<LeakproofHost> {
  const host = await LeakproofHost.create(tag, { echoPorts: [...WEB_PORTS, 444] });
  try {
    await host.generate([spec]);
    await host.start();
    return host;
  } catch (err) {
    await host.destroy();
    throw err;
  }
}

/** Every combination of UIDS, PORTS and DESTINATIONS: the kernel's answer and a real connection (one client process per uid). */
async function matrix(host: LeakproofHost, iface: string, uids: number[], ports: number[], destinations: string[]): Promise<Row[]> {
  const rows: Row[] = [];
  for (const uid of uids) {
    const flows = ports.flatMap((port) => destinations.map((dst) => ({ uid, port, dst })));
    const results = await host.probe(
      flows.map((f) => ({ proto: "tcp", host: f.dst, port: f.port })),
      { uid },
    );
    for (const [i, f] of flows.entries()) {
      const d = await host.lab.routeGet(f.dst, { ipproto: "tcp", uid, dport: f.port, tunnel: iface });
      const r = results[i]!;
      rows.push({ ...f, kernel: d.verdict === "unreachable" ? `unreachable (${d.error})` : `table ${d.table ?? "main"} dev ${d.dev}`, result: r.ok ? r.saw! : `failed: ${r.error}` });
    }
  }
  return rows;
}

const format = (rows: Row[]) => rows.map((r) => `  uid ${String(r.uid).padEnd(5)} port ${String(r.port).padEnd(5)} ${r.dst.padEnd(15)} kernel: ${r.kernel.padEnd(22)} server saw ${r.result}`);

/** Checks every row: through IFACE (seen as SOURCE) exactly when CAPTURED says so, else directly from H's LAN address. */
function assertPaths(rows: Row[], iface: string, source: string, captured: (f: Flow) => boolean): void {
  const wrong = rows.filter((r) => {
    const tunnel = captured(r);
    return tunnel ? !(r.kernel.endsWith(`dev ${iface}`) && r.result === source) : !(r.kernel === "table main dev lan0" && r.result === ADDR.hostLan4);
  });
  assert.equal(wrong.length, 0, `wrong paths:\n${format(wrong).join("\n")}`);
}

const ranged = {
  version: 1,
  tunnel: { interface: "wg0", addresses: ["10.253.0.2/32"] },
  split: { protocols: ["tcp"], users: [1000, "3000-3999"], ports: [80, "440-444"], include: ["203.0.113.0/24"], ipv6: "direct" },
};

const t = labSuite(
  "lab: leak-proof 5, users, ports and include",
  async () => {
    const perUserSpec = await readSpec(fileURLToPath(new URL("../../examples/per-user.toml", import.meta.url)));
    const [perUser, range] = await setUpAll([narrowHost("narrowpu", perUserSpec), narrowHost("narrowrg", ranged)], (h) => h.destroy());
    return { perUser, range };
  },
  async ({ perUser, range }) => {
    await Promise.all([perUser.destroy(), range.destroy()]);
  },
);

t.test("networkd warns about none of the files; the kernel holds User= as uidrange and DestinationPort= as dport", async ({ perUser, range }) => {
  assert.equal(await perUser.networkdWarnings(), []);
  assert.equal(await range.networkdWarnings(), []);
  const captureRules = (await range.lab.rules()).filter((r) => r.table === "10086");
  assert.equal(
    // `ip -j rule` shows a single port as dport, a range as dport_start/dport_end.
    // One selector set per uid range and port, in each capture rule (split.inbound gives a set several, one per source).
    [...new Set(captureRules.map((r) => `uidrange ${r.uid_start}-${r.uid_end} dport ${r.dport ?? `${r.dport_start}-${r.dport_end}`}`))].sort(),
    ["uidrange 1000-1000 dport 440-444", "uidrange 1000-1000 dport 80", "uidrange 3000-3999 dport 440-444", "uidrange 3000-3999 dport 80"],
  );
});

t.test("per-user example: only uid 995's TCP to ports 80 and 443 of the included networks takes wgsvc", async ({ perUser }) => {
  // 198.51.100.7 (the peer, excluded) has no web server: only the kernel is asked about it.
  const rows = await matrix(perUser, "wgsvc", [995, 996, 0], [...WEB_PORTS, ECHO_PORT], [ADDR.server4, ADDR.serverInet4]);
  say(["per-user example:", ...format(rows)]);
  assertPaths(rows, "wgsvc", "10.77.0.2", (f) => f.uid === 995 && WEB_PORTS.includes(f.port));
  const endpoint = await perUser.lab.routeGet(ADDR.peerInet4, { ipproto: "tcp", uid: 995, dport: 443, tunnel: "wgsvc" });
  assert.equal(`${endpoint.table ?? "main"} ${endpoint.dev}`, "main lan0", "the excluded peer address stays direct even for uid 995 port 443");
});

t.test("ranges and include: uids 1000 and 3000-3999, ports 80 and 440-444, only to 203.0.113.0/24", async ({ range }) => {
  const rows = await matrix(range, "wg0", [1000, 3500, 2000], [80, 443, 444, ECHO_PORT], [ADDR.server4, ADDR.serverInet4]);
  say(["ranges and include:", ...format(rows)]);
  assertPaths(rows, "wg0", "10.253.0.2", (f) => (f.uid === 1000 || f.uid === 3500) && (f.port === 80 || (f.port >= 440 && f.port <= 444)) && f.dst === ADDR.server4);
});

t.run();
