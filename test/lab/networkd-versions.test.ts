// The networkd behaviours the project relies on that differ between versions,
// pinned on the version the lab runs (GEN_NETWORKD_LAB_SYSTEMD; test/run.mjs runs
// this file on 252, 257 and the newest). Each assertion names the version it saw;
// docs/operate.md has the table of what each version did.
//   - a changed .netdev and `networkctl reload`: 252 leaves the existing link as it
//     is; 257 and later update it in place. Probed on the split's anchor bridge
//     (a netdev networkd creates itself here) with a lab-only drop-in MTUBytes=.
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { labSuite } from "./harness.js";
import { ROOT, SplitCase } from "./case.js";
import { readSpec } from "./expect.js";
import { poll } from "./proc.js";

const ANCHOR = "wg0-split";
const findings: string[] = [];

const t = labSuite(
  "lab: networkd version behaviours",
  async () => SplitCase.applied("versions", await readSpec(join(ROOT, "examples/seed.toml"))),
  async (c) => {
    if (findings.length) console.log(`networkd ${c.lab.systemd.version} (${c.lab.systemd.name}):\n  ${findings.join("\n  ")}`);
    await c.destroy();
  },
);

const mtu = async (c: SplitCase, link: string): Promise<number> => JSON.parse(await c.lab.ip("H", ["-j", "link", "show", "dev", link]))[0].mtu;

t.test("a changed .netdev on reload: applied to the existing link since 257, ignored before", async (c) => {
  const { version } = c.lab.systemd;
  const before = await mtu(c, ANCHOR);
  const ifindex = JSON.parse(await c.lab.ip("H", ["-j", "link", "show", "dev", ANCHOR]))[0].ifindex;
  const dropIns = join(c.lab.etcDir, `50-${ANCHOR}.netdev.d`);
  await mkdir(dropIns, { recursive: true });
  await writeFile(join(dropIns, "99-lab-mtu.conf"), "# Lab probe: does a reload apply a changed .netdev?\n[NetDev]\nMTUBytes=1280\n");
  try {
    await c.lab.networkctl(["reload"]);
    await c.lab.waitConfigured(await c.links());
    if (version >= 257) {
      await poll(`networkd ${version} to set ${ANCHOR}'s MTU to 1280 on reload`, async () => ((await mtu(c, ANCHOR)) === 1280 ? true : undefined), { timeoutMs: 10_000 });
    } else {
      // Nothing to wait for: give networkd the time a 257 needed (well under a second) and then some.
      await new Promise((r) => setTimeout(r, 2000));
      assert.is(await mtu(c, ANCHOR), before, `networkd ${version}: a reload does not apply a changed .netdev to the existing link`);
    }
    const after = JSON.parse(await c.lab.ip("H", ["-j", "link", "show", "dev", ANCHOR]))[0];
    assert.is(after.ifindex, ifindex, `networkd ${version}: the reload keeps the link itself`);
    findings.push(`reload with a changed .netdev (MTUBytes=1280 on ${ANCHOR}): MTU ${before} -> ${after.mtu}, same link`);
  } finally {
    await rm(dropIns, { recursive: true, force: true });
  }
});

t.test("a restart: 257 and later hand their state to the next start (PID 1's fd store), 252 does not", async (c) => {
  const { version } = c.lab.systemd;
  const before = c.lab.fdstoreEvents().length;
  await c.lab.stopNetworkd();
  if (version >= 257) {
    await poll(`networkd ${version} to store its serialization`, () => (c.lab.fdstoreEvents().slice(before).some((e) => /^stored 1 fd\(s\) named manager-serialization$/.test(e)) ? true : undefined), { timeoutMs: 5000 });
  }
  await c.lab.startNetworkd();
  await c.lab.waitConfigured(await c.links());
  const events = c.lab.fdstoreEvents().slice(before);
  if (version >= 257) assert.equal(events, ["stored 1 fd(s) named manager-serialization", "handed out 1 fd(s)"], `networkd ${version}`);
  else assert.equal(events, ["handed out 0 fd(s)"], `networkd ${version} stores nothing`);
  await c.checkKernelState();
  findings.push(`restart: fd store ${events.join(", ")}; the kernel holds exactly the plan afterwards`);
});

t.run();
