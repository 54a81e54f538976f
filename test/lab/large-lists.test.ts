// Lab: long prefix lists applied in full by the real networkd. networkd keeps at most 8,192
// static routes per .network file (257 and later; 252 too where net.ipv6.route.max_size is
// 4096, the default of kernels before 6.3), so the generator spreads the table over anchors
// of at most 8,000 routes. Each case applies a spec and asks the kernel: its table equals
// the plan exactly (as sets, count per family), every link is configured, and networkd
// logged no dropped route and no failed link.
//   - 20,000 routes (12,000 IPv4 and 8,000 IPv6 throws), with H's net.ipv6.route.max_size
//     at 4096 and at the kernel's default;
//   - the bench's 1M-prefix synthetic IPv4 list (409,090 throws) and the real US list
//     (geoip-country: 270,013 routes). networkd 252 sends every route request at once and
//     its netlink socket takes 65,535 outstanding replies, so there a link fails however
//     the routes are spread: on 252 the case asserts exactly that failure, and that doctor
//     names it with its cause;
//   - 70,000 routes: `apply` refuses them on 252 before writing anything; 257 and later apply them.
// The two large cases take minutes and need a machine networkd is not starved on: under a load
// average of 15-20 on 2 cores, networkd (252 at 20,000 routes, 262 at 409,090) waited more than
// netlink's 25 s for replies ("Failed to sync link information: Connection timed out") and failed
// links. They run with GEN_NETWORKD_LAB_LARGE=1 (and in bench/apply-lab.ts).
import { readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { countryLists } from "../../bench/geoip-lists.js";
import { ipv4List } from "../../bench/synthetic.mjs";
import { CLI, SplitCase } from "./case.js";
import { labSuite } from "./harness.js";
import { applyLarge, disjointLines, DROPPED_OR_FAILED } from "./large.js";
import { labSystemd } from "./systemd.js";
import { CommandError, poll, run } from "./proc.js";

const LIMIT_MS = 5 * 60_000;
const LARGE = process.env.GEN_NETWORKD_LAB_LARGE === "1";
/** The first networkd version that sends route requests in batches (128 at a time). */
const BATCHING_NETWORKD = 257;
/** One line per case on stdout: the apply times and counts the lab measured. */
const report = (line: string) => console.log(`large lists on networkd ${labSystemd().version} (${labSystemd().name}): ${line}`);


async function generate(tag: string, lines: string[], sysctls: string[] = []): Promise<SplitCase> {
  const c = await SplitCase.create(tag, undefined, undefined, { hostSysctls: sysctls });
  try {
    const listPath = join(c.lab.work, "list.txt");
    await writeFile(listPath, lines.join("\n") + "\n");
    await c.generate({
      version: 1,
      tunnel: { interface: "wg0", addresses: ["10.253.0.2/32", "fd00:253::2/128"] },
      split: { protocols: ["tcp"], exclude: ["@local"], exclude_files: [listPath] },
    });
    return c;
  } catch (error) {
    await c.destroy();
    throw error;
  }
}

/** Applies and asserts the kernel holds the plan, networkd said nothing of drops or failures. */
async function appliedInFull(name: string, c: SplitCase, expect: (planned: { ipv4: number; ipv6: number }) => void): Promise<void> {
  const { version } = labSystemd();
  const applied = await applyLarge(c, LIMIT_MS);
  expect(applied.planned);
  const complaints = (c.lab.networkd?.lines ?? []).filter((l) => DROPPED_OR_FAILED.test(l));
  assert.equal(complaints.slice(0, 5), [], `${name} on networkd ${version}: networkd dropped routes or failed a link`);
  for (const link of await c.links()) assert.is((await c.lab.linkState(link))?.ADMIN_STATE, "configured", `${name} on networkd ${version}: ${link}`);
  report(`${name}: ${applied.planned.ipv4 + applied.planned.ipv6} routes in the kernel ${(applied.kernelMs / 1000).toFixed(1)} s after networkd started (links configured at ${(applied.configuredMs / 1000).toFixed(1)} s)`);
}

/** networkd before 257: a link fails (ERANGE past 65,535 outstanding requests) and doctor says why. */
async function failsOnOldNetworkd(name: string, c: SplitCase): Promise<void> {
  const { version } = labSystemd();
  await c.lab.startNetworkd(LIMIT_MS);
  const links = await c.links();
  const failed = await poll(
    `${name}: a link networkd 252 fails`,
    async () => {
      const states = await c.lab.linkStates(links);
      return links.find((_, i) => states[i]?.ADMIN_STATE === "failed");
    },
    { timeoutMs: LIMIT_MS, intervalMs: 1000 },
  );
  assert.ok(c.lab.networkd?.lines.some((l) => /Numerical result out of range/.test(l)), `${name} on networkd ${version}: the failure's cause in networkd's log`);
  let stdout = "";
  try {
    stdout = await c.lab.inHost([process.execPath, CLI, "doctor", c.specPath, "-o", c.lab.genDir, "--json"], { timeoutMs: 120_000 });
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    stdout = error.stdout;
  }
  const checks = (JSON.parse(stdout) as { checks: { id: string; status: string; details: string[]; fix?: string }[] }).checks;
  const count = checks.find((k) => k.id === "route-count")!;
  assert.is(count.status, "fail", `${name}: doctor's route-count`);
  assert.match(count.details.join("\n"), new RegExp(`cause: networkd failed .*${failed}.*Numerical result out of range`), `${name}: doctor names the cause`);
  assert.match(count.fix!, /networkd 257 or later/);
  report(`${name}: networkd ${version} failed ${failed} (Numerical result out of range), as documented; doctor: ${count.fix}`);
}

const t = labSuite("lab: long prefix lists, applied in full");

for (const [label, sysctls] of [
  ["net.ipv6.route.max_size=4096 (kernels before 6.3)", ["net.ipv6.route.max_size=4096"]],
  ["the kernel's default net.ipv6.route.max_size", []],
] as const) {
  t.test(`20,000 routes over 3 anchors, ${label}: the kernel's table is the plan`, async () => {
    const c = await generate(`l20k${sysctls.length}`, disjointLines(12_000, 8_000), [...sysctls]);
    try {
      // + the tunnel's two default routes; @local's throws
      await appliedInFull(`20k, ${label}`, c, (planned) => assert.equal(planned, { ipv4: 12_000 + 1 + 8, ipv6: 8_000 + 1 + 4 }, "planned routes per family"));
    } finally {
      await c.destroy();
    }
  });
}

t.test("70,000 routes: apply refuses them on networkd before 257, writing nothing; from 257 on networkd applies them in full", async () => {
  const { version } = labSystemd();
  // 70,000 IPv4 /24s: past the 65,000 that networkd 252 and 254 send at once.
  const c = await generate("l70k", disjointLines(70_000, 0));
  try {
    if (version >= BATCHING_NETWORKD) {
      await appliedInFull("70k", c, (planned) => assert.equal(planned, { ipv4: 70_000 + 1 + 8, ipv6: 1 + 4 }, "planned routes per family"));
    }
    // Where the lab's networkd reads them (H's /run/systemd/network is c.lab.genDir).
    const argv = [process.execPath, CLI, "apply", c.specPath, "-o", "/run/systemd/network", "--conf-dir", "/run/systemd/network/networkd.conf.d", "--state-dir", join(c.lab.work, "state"), "--yes"];
    if (version < BATCHING_NETWORKD) {
      // The generated files are not there yet: apply is what would write them.
      const written = async () => (await readdir(c.lab.genDir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);
      for (const entry of await readdir(c.lab.genDir, { recursive: true, withFileTypes: true })) if (entry.isFile()) await rm(join(entry.parentPath, entry.name));
      await c.lab.startNetworkd(LIMIT_MS);
      const refused = await run(c.lab.hostArgv(argv), { timeoutMs: LIMIT_MS }).then(
        (): never => {
          throw new Error(`apply accepted 70,000 routes on networkd ${version}`);
        },
        (error) => {
          if (!(error instanceof CommandError)) throw error;
          return error;
        },
      );
      assert.is(refused.code, 3, refused.stderr);
      assert.match(refused.stderr, new RegExp(`apply: the plan has 70\\d{3} routes \\(table 10086\\), and networkd ${version} sends every route at once and fails links past about 65000 .*; nothing was written; use networkd 257 or later`), refused.stderr);
      assert.equal(await written(), [], "nothing was written");
      report("70k: apply refused (exit 3), nothing written");
    } else {
      // apply finds the files in place: no refusal for the route count on this version.
      const { stdout } = await run(c.lab.hostArgv(argv), { timeoutMs: LIMIT_MS }).catch((error) => (error instanceof CommandError ? error : Promise.reject(error)));
      assert.match(stdout, /already holds what .* generates; nothing to write or reload/, stdout);
    }
  } finally {
    await c.destroy();
  }
});

t.test("the 1M-prefix synthetic list (409,090 throws over 52 anchors): in full from 257 on; 252 fails as documented", async () => {
  if (!LARGE) return report("1M synthetic: not run (GEN_NETWORKD_LAB_LARGE=1 runs it)");
  const c = await generate("l1m", ipv4List(1_000_000, 4));
  try {
    // The list overlaps @local, so its 409,090 prefixes merge a little with @local's.
    if (labSystemd().version >= BATCHING_NETWORKD) await appliedInFull("1M synthetic IPv4", c, (planned) => assert.ok(planned.ipv4 > 400_000 && planned.ipv6 === 5, JSON.stringify(planned)));
    else await failsOnOldNetworkd("1M synthetic IPv4", c);
  } finally {
    await c.destroy();
  }
});

t.test("the real US list (geoip-country): in full from 257 on (252: the 1M case shows its limit)", async () => {
  if (!LARGE) return report("US: not run (GEN_NETWORKD_LAB_LARGE=1 runs it)");
  if (labSystemd().version < BATCHING_NETWORKD) return;
  const [us] = countryLists(["US"]);
  const c = await generate("lus", us!.text.split("\n"));
  try {
    await appliedInFull(`US (${us!.ipv4} IPv4 + ${us!.ipv6} IPv6 prefixes)`, c, (planned) => assert.ok(planned.ipv4 > 100_000 && planned.ipv6 > 100_000, JSON.stringify(planned)));
  } finally {
    await c.destroy();
  }
});

t.run();
