// Every example spec, generated with the real CLI, applied by the real
// systemd-networkd to the namespace lab, and checked six ways (issue 3):
//   1. networkd reports no warning for any generated file
//   2. the kernel holds exactly the planned rules and table contents
//   3. `ip route get` verdicts for the probe table equal the expected ones
//   4. real TCP/UDP take the expected paths (the servers say which source they saw)
//   5. the blog's five `ip` commands give the same verdicts, except the deliberate differences
//   6. edit the spec, regenerate into the same directory, `networkctl reload`: the kernel holds the new plan only
//
// The cases of all examples are set up in parallel (distinct namespace prefixes);
// the tests then check them one suite per example. GEN_NETWORKD_LAB_VERBOSE=1
// prints every observation.
import { readdirSync } from "node:fs";
import { basename, join } from "node:path";
import * as assert from "uvu/assert";
import { labSuite, labUnavailable } from "./harness.js";
import { BlogReference, compareWithBlog, formatRow, formatTraffic, ROOT, SplitCase } from "./case.js";
import { readSpec } from "./expect.js";
import { ADDR } from "./lab.js";

const verbose = !!process.env.GEN_NETWORKD_LAB_VERBOSE;
const say = (lines: string[]) => verbose && console.log("\n" + lines.join("\n"));

const examplesDir = join(ROOT, "examples");
const all = readdirSync(examplesDir).filter((n) => n.endsWith(".toml") || n.endsWith(".json")).sort();
// A .json twin of a .toml example is the same spec (the golden tests prove the files equal).
// GEN_NETWORKD_LAB_ONLY=seed,laptop runs those examples only.
const only = process.env.GEN_NETWORKD_LAB_ONLY?.split(",").filter(Boolean);
const examples = all
  .filter((n) => n.endsWith(".toml") || !all.includes(n.replace(/\.json$/, ".toml")))
  .filter((n) => !only || only.some((o) => n.startsWith(o)));

interface Case {
  ours: SplitCase;
  blog: BlogReference;
  started: number;
}

// One blog reference host serves every example (its verdicts do not depend on the spec).
let blogPromise: Promise<BlogReference> | undefined;
const blog = () => (blogPromise ??= BlogReference.create("blog"));

// Set every case up at once; each suite awaits its own.
const pending = new Map<string, Promise<Case>>();
function setUp(name: string): Promise<Case> {
  if (!pending.has(name)) {
    pending.set(
      name,
      (async () => {
        const started = Date.now();
        const raw = await readSpec(join(examplesDir, name));
        const tag = basename(name).replace(/\.(toml|json)$/, "").replace(/[^a-z0-9]/gi, "").slice(0, 8);
        const c = await SplitCase.create(tag, raw);
        try {
          await c.generate(raw, name.endsWith(".json") ? "json" : "toml");
          await c.apply();
        } catch (err) {
          await c.destroy();
          throw err;
        }
        return { ours: c, blog: await blog(), started };
      })(),
    );
  }
  return pending.get(name)!;
}
if (!labUnavailable()) for (const name of examples) void setUp(name).catch(() => {});

for (const name of examples) {
  const t = labSuite(
    `lab: examples/${name}`,
    () => setUp(name),
    async (c) => {
      await c.ours.destroy();
      if (name === examples.at(-1)) await c.blog.destroy();
    },
  );

  t.test("1. networkd reports no warning for any generated file", async ({ ours }) => {
    const w = await ours.checkNoWarnings();
    say([`networkd warnings: scratch ${w.scratch.length}, host ${w.host.length}`]);
  });

  t.test("2. the kernel holds exactly the planned rules and table contents", async ({ ours }) => {
    const k = await ours.checkKernelState();
    say(["kernel:", ...k.rules.map((r) => `  rule  ${r}`), ...k.routes.map((r) => `  route ${r}`)]);
  });

  t.test("3. ip route get verdicts equal the expected ones", async ({ ours }) => {
    const rows = await ours.checkVerdicts();
    say([`route get (${rows.length} probes):`, ...rows.map(formatRow)]);
  });

  t.test("4. real TCP and UDP take the expected paths", async ({ ours }) => {
    const rows = await ours.checkTraffic();
    say(["traffic:", ...rows.map(formatTraffic)]);
  });

  t.test("5. the blog's five ip commands agree except where the spec deliberately differs", async ({ ours, blog }) => {
    const cmp = await compareWithBlog(ours, blog);
    say([
      "blog commands:",
      ...blog.commands.map((c) => `  ip ${c}`),
      `rule priority: ours ${cmp.priority.ours.join("/")}, blog ${cmp.priority.blog}`,
      `deliberate differences (${cmp.differences.length}):`,
      ...cmp.differences.map(
        (d) =>
          `  ${d.probe.proto} ${d.probe.dst.padEnd(28)} ${d.probe.uid !== undefined ? `uid ${d.probe.uid} ` : ""}${d.probe.dport !== undefined ? `dport ${d.probe.dport} ` : ""}ours ${d.ours.padEnd(11)} blog ${d.blog.padEnd(11)} [${d.feature}] ${d.why}`,
      ),
      ...cmp.traffic.map(formatTraffic),
    ]);
  });

  t.test("6. regenerate on change + networkctl reload leaves exactly the new plan", async ({ ours, started }) => {
    const old = ours.spec;
    const newTable = old.table + 1;
    const newPriority = (old.priority ?? 10086) + 1000;
    const r = await ours.regenerateAndReload((spec) => {
      spec.split ??= {};
      spec.split.exclude = [...(spec.split.exclude ?? ["@local"]), "203.0.113.0/24"];
      spec.split.priority = newPriority;
      spec.split.table = newTable;
    });
    assert.equal(ours.spec.table, newTable);
    // Nothing of the old plan is left: no rule at the old priority or into the old table, the old table empty.
    const stale = [...r.after.rules, ...r.after.routes].filter(
      (x) => x.includes(`lookup ${old.table}`) || x.startsWith(`table ${old.table} `) || (old.priority !== undefined && x.includes(`pref ${old.priority} `)),
    );
    assert.equal(stale, [], "old rules or routes left after reload");
    // The kernel's answers and real traffic follow the new spec: the internet server is now excluded.
    await ours.checkVerdicts();
    const traffic = await ours.checkTraffic();
    const toServer = traffic.filter((x) => x.dst === ADDR.server4);
    assert.ok(toServer.length > 0);
    for (const x of toServer) assert.equal(x.result.saw, ADDR.hostLan4, `${x.label}: the newly excluded internet server should be reached directly`);
    say([
      `reload: table ${old.table} → ${newTable}, priority ${old.priority ?? "default"} → ${newPriority}, +exclude 203.0.113.0/24; applied in ${r.reloadMs} ms${ours.netdevRecreated ? " (the .netdev changed: tunnel recreated)" : ""}`,
      ...r.after.rules.map((x) => `  rule  ${x}`),
    ]);
    console.log(
      `\n${name}: topology ${ours.lab.timings.topology} ms, apply ${ours.applyMs} ms, reload ${r.reloadMs} ms, case ${Date.now() - started} ms`,
    );
  });

  t.run();
}
