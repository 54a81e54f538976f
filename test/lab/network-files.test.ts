// Earlier .network files shadowing ours, on the real networkd: a user's file in
// /etc/systemd/network that sorts before our 50- files and matches our links. networkd
// applies the first matching file and ignores ours without an error; the lab asserts
// that it really does (NETWORK_FILE= in its link state, the other file's address on the
// link), that apply and generate warn naming the file (and still exit 0), that doctor's
// network-files check fails naming the file networkd applied and why, and that once the
// file is gone networkd takes ours again and doctor passes.
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as assert from "uvu/assert";
import type { Check } from "../../src/doctor.js";
import { labSuite } from "./harness.js";
import { CLI, inHost, ROOT, SplitCase } from "./case.js";
import { readSpec } from "./expect.js";
import { poll } from "./proc.js";

/** Where H's networkd reads our files, and the user's. */
const OURS = "/run/systemd/network";
const THEIRS = "/etc/systemd/network";

async function setUp(): Promise<SplitCase> {
  return SplitCase.applied("network-files", await readSpec(join(ROOT, "examples/seed.toml")));
}

async function doctor(c: SplitCase): Promise<{ code: number; checks: Check[] }> {
  const { code, stdout } = await inHost(c, [process.execPath, CLI, "doctor", c.specPath, "-o", c.lab.genDir, "--json"]);
  return { code, checks: (JSON.parse(stdout) as { checks: Check[] }).checks };
}

const summary = (checks: Check[]) => checks.map((k) => `${k.status} ${k.id}: ${k.summary}${k.status === "fail" ? `\n    ${k.details.join("\n    ")}\n    fix: ${k.fix}` : ""}`).join("\n");

/** Waits until networkd configures each LINK from FILES[LINK] (NETWORK_FILE= in its link state). */
async function waitNetworkFiles(c: SplitCase, files: Record<string, string>): Promise<void> {
  const links = Object.keys(files);
  await poll(
    `networkd to configure ${links.map((l) => `${l} from ${files[l]}`).join(", ")}`,
    async () => ((await c.lab.linkStates(links)).every((s, i) => s?.NETWORK_FILE === files[links[i]!] && s?.ADMIN_STATE === "configured") ? true : undefined),
    { timeoutMs: 20_000, describe: async () => `${JSON.stringify(await c.lab.linkStates(links))}\nnetworkd:\n${c.lab.networkd?.tail()}` },
  );
}

async function addresses(c: SplitCase, link: string): Promise<string[]> {
  const [info] = JSON.parse(await c.lab.ip("H", ["-j", "address", "show", "dev", link])) as { addr_info: { local: string; prefixlen: number }[] }[];
  return info!.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
}

/** Puts THEIR file into H's /etc/systemd/network, reloads networkd; returns what apply (inside H, writing where networkd reads) said first. */
async function addTheirs(c: SplitCase, name: string, text: string): Promise<{ code: number; stderr: string }> {
  await writeFile(join(c.lab.etcDir, name), text, { mode: 0o644 });
  const applied = await inHost(c, [process.execPath, CLI, "apply", c.specPath, "-o", OURS, "--conf-dir", "/etc/systemd/networkd.conf.d", "--state-dir", join(c.lab.work, "state"), "--yes"]);
  await c.lab.networkctl(["reload"]);
  return applied;
}

/** Removes their file, reloads networkd, and waits until it configures our links from ours again; doctor passes. */
async function removeTheirs(c: SplitCase, name: string): Promise<void> {
  await rm(join(c.lab.etcDir, name));
  await c.lab.networkctl(["reload"]);
  await waitNetworkFiles(c, { wg0: `${OURS}/50-wg0.network`, "wg0-split": `${OURS}/50-wg0-split.network` });
  const healed = await poll("doctor to pass again", async () => {
    const result = await doctor(c);
    return result.code === 0 ? result : undefined;
  }, { timeoutMs: 20_000, intervalMs: 500, describe: async () => summary((await doctor(c)).checks) });
  assert.is(healed.checks.find((k) => k.id === "network-files")!.status, "pass", summary(healed.checks));
}

const t = labSuite("lab: .network files that take our links before ours", setUp, (c) => c.destroy());

t.test("healthy: networkd configures wg0 and wg0-split from our files, and doctor's network-files check says so", async (c) => {
  await waitNetworkFiles(c, { wg0: `${OURS}/50-wg0.network`, "wg0-split": `${OURS}/50-wg0-split.network` });
  const { code, checks } = await doctor(c);
  assert.is(code, 0, summary(checks));
  const check = checks.find((k) => k.id === "network-files")!;
  assert.is(check.status, "pass", summary(checks));
  assert.is(check.summary, "networkd configures wg0, wg0-split from our files");
});

t.test("a 10-wg0.network in /etc/systemd/network: apply warns (exit 0), networkd configures wg0 from it, doctor fails naming it; removed, ours again", async (c) => {
  const theirs = `${THEIRS}/10-wg0.network`;
  const { code, stderr } = await addTheirs(c, "10-wg0.network", "[Match]\nName=wg0\n\n[Network]\nAddress=10.99.0.2/32\nLinkLocalAddressing=no\n");
  assert.is(code, 0, stderr);
  assert.match(stderr, `gen-networkd: warning: ${theirs} sorts before 50-wg0.network and its [Match] Name=wg0 matches wg0: networkd would configure wg0 from it, not from 50-wg0.network; regenerate ours with --prefix 09`);
  assert.not.match(stderr, /warning: .* wg0-split/, "wg0-split is not theirs");
  // The kernel: networkd really configured wg0 from their file.
  await waitNetworkFiles(c, { wg0: theirs, "wg0-split": `${OURS}/50-wg0-split.network` });
  assert.ok((await addresses(c, "wg0")).includes("10.99.0.2/32"), `wg0 has their address: ${await addresses(c, "wg0")}`);
  const sick = await doctor(c);
  assert.is(sick.code, 1, summary(sick.checks));
  const check = sick.checks.find((k) => k.id === "network-files")!;
  assert.is(check.status, "fail", summary(sick.checks));
  assert.equal(check.details, [`networkd configures wg0 from ${theirs}, not from ${c.lab.genDir}/50-wg0.network: ${theirs} sorts before 50-wg0.network and its [Match] Name=wg0 matches wg0`]);
  assert.match(check.fix!, /^regenerate ours with --prefix 09 .*; then networkctl reload$/);
  // generate alone, into a directory for review, warns about /etc too.
  const review = await inHost(c, [process.execPath, CLI, c.specPath, "-o", join(c.lab.work, "review")]);
  assert.is(review.code, 0, review.stderr);
  assert.match(review.stderr, `gen-networkd: warning: ${theirs} sorts before 50-wg0.network`);
  await removeTheirs(c, "10-wg0.network");
});

t.test("a Name=wg* file sorting first takes both links, the tunnel and the anchor; doctor names it for each", async (c) => {
  const theirs = `${THEIRS}/10-wg.network`;
  const { stderr } = await addTheirs(c, "10-wg.network", "[Match]\nName=wg*\n\n[Network]\nLinkLocalAddressing=no\nConfigureWithoutCarrier=yes\n");
  assert.is(stderr.match(new RegExp(`warning: ${theirs} sorts before`, "g"))?.length, 2, stderr);
  await waitNetworkFiles(c, { wg0: theirs, "wg0-split": theirs });
  const sick = await doctor(c);
  const check = sick.checks.find((k) => k.id === "network-files")!;
  assert.is(check.status, "fail", summary(sick.checks));
  assert.equal(
    check.details.map((d) => d.replace(/, not from .*?:/, ":")),
    [`networkd configures wg0 from ${theirs}: ${theirs} sorts before 50-wg0.network and its [Match] Name=wg* matches wg0`, `networkd configures wg0-split from ${theirs}: ${theirs} sorts before 50-wg0-split.network and its [Match] Name=wg* matches wg0-split`],
  );
  // What their file does not configure, networkd no longer keeps: our table and rules go with our file.
  assert.ok(sick.checks.find((k) => k.id === "rules")!.status === "fail", summary(sick.checks));
  await removeTheirs(c, "10-wg.network");
});

t.run();
