// The networkd behaviours the project relies on that differ between versions,
// pinned on the version the lab runs (GEN_NETWORKD_LAB_SYSTEMD; test/run.mjs runs
// this file on 252, 257 and the newest). Each assertion names the version it saw;
// docs/operate.md has the table of what each version did.
//   - a changed .netdev and `networkctl reload`: 252 leaves the existing link as it
//     is; 257 and later update it in place. Probed on the split's anchor bridge
//     (a netdev networkd creates itself here) with a lab-only drop-in MTUBytes=.
//   - a restart: 257 and later hand their serialized state to the next start through
//     PID 1's fd store (the lab's stand-in, helpers/fdstore.py); 252 stores nothing.
//     After a spec change with a restart and no reload, 252 keeps the old table's
//     routes (foreign to it) and 257 and later remove them (their own, from the
//     serialization); every version keeps the old rules (the networkd.conf drop-in
//     keeps foreign rules, and rules are not serialized), so the README's "reload,
//     do not only restart" advice holds everywhere.
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { labSuite } from "./harness.js";
import { CLI, ROOT, SplitCase } from "./case.js";
import { readSpec } from "./expect.js";
import { CommandError, poll, run } from "./proc.js";

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

t.test("a restart instead of a reload after a table change: what is left of the old table and its rules", async (c) => {
  const { version } = c.lab.systemd;
  const oldTable = String(c.spec.raw.split.table);
  const raw = structuredClone(c.spec.raw);
  raw.split.table = 10087;
  await c.generate(raw);
  await c.lab.syncOverlay();
  await c.lab.stopNetworkd();
  await c.lab.startNetworkd();
  await c.lab.waitConfigured(await c.links());
  await poll(`networkd ${version}: the new table's routes`, async () => ((await c.lab.routes(10087, "ipv4")).length > 0 ? true : undefined));
  const oldRoutes = async () => [...(await c.lab.routes(oldTable, "ipv4")), ...(await c.lab.routes(oldTable, "ipv6"))].length;
  const oldRules = async () => (await c.lab.rules()).filter((r) => String(r.table) === oldTable).length;
  const planned = (await c.plannedState()).routes.length;
  const afterRestart = { routes: await oldRoutes(), rules: await oldRules() };
  await c.lab.networkctl(["reload"]);
  await c.lab.waitConfigured(await c.links());
  const afterReload = { routes: await oldRoutes(), rules: await oldRules() };
  findings.push(
    `restart after the table changed (no reload): table ${oldTable} keeps ${afterRestart.routes} routes and ${afterRestart.rules} rules into it; after a reload then: ${afterReload.routes} routes, ${afterReload.rules} rules`,
  );
  if (version >= 257) {
    // Known from the serialization as its own, and no longer configured: removed.
    assert.is(afterRestart.routes, 0, `networkd ${version}: the old table's routes after the restart`);
  } else {
    // Foreign to the new networkd, and (device-less throws, routes on a link it configures) left alone.
    assert.is(afterRestart.routes, planned, `networkd ${version}: the old table's routes stay, all of them`);
  }
  const doctor = await run(c.lab.hostArgv([process.execPath, CLI, "doctor", c.specPath, "-o", c.lab.genDir]), { timeoutMs: 60_000 }).then(
    (r) => ({ code: 0, out: r.stdout }),
    (e: CommandError) => ({ code: Number(e.code), out: `${e.stdout}${e.stderr}` }),
  );
  // doctor names the leftover rules, with the command that removes each.
  assert.is(doctor.code, 1, `networkd ${version}: doctor after the restart:\n${doctor.out}`);
  assert.match(doctor.out, new RegExp(`^FAIL +rules +0 planned rules missing, ${afterReload.rules} unplanned rules on our table or priorities$`, "m"), `networkd ${version}`);
  assert.match(doctor.out, /^ +fix: ip -[46] rule del priority /m, `networkd ${version}`);
  // With ManageForeignRoutingPolicyRules=no the old rules are foreign and stay, on every version (rules are not serialized).
  assert.ok(afterRestart.rules > 0, `networkd ${version}: the rules into table ${oldTable} after the restart`);
  assert.is(afterReload.rules, afterRestart.rules, `networkd ${version}: a reload afterwards leaves the old rules`);
});

t.run();
