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
import { existsSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import * as assert from "uvu/assert";
import { labSuite, labUnavailable } from "./harness.js";
import { BlogReference, compareWithBlog, formatRow, formatTraffic, ROOT, SplitCase } from "./case.js";
import { readSpec } from "./expect.js";
import { ADDR } from "./lab.js";

// The mount points the lab needs in its private mount namespaces, as the machine has them before any lab runs.
const MOUNT_POINTS = ["/etc/systemd/networkd.conf.d", "/run/dbus", "/run/wireguard"];
const mountPointsBefore = MOUNT_POINTS.map(existsSync);

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

interface Outcome {
  lines?: string[];
  error?: unknown;
  ms: number;
}

interface Case {
  ours: SplitCase;
  blog: BlogReference;
  /** One outcome per assertion, in order. */
  outcomes: Outcome[];
}

type Check = { title: string; run: (c: { ours: SplitCase; blog: BlogReference }) => Promise<string[]> };

// Assertions 1-5 only read the lab, so they run at once; 6 changes it and runs after them.
const READ_ONLY: Check[] = [
  {
    title: "1. networkd reports no warning for any generated file",
    run: async ({ ours }) => {
      const w = await ours.checkNoWarnings();
      return [`networkd warnings: scratch ${w.scratch.length}, host ${w.host.length}`];
    },
  },
  {
    title: "2. the kernel holds exactly the planned rules and table contents",
    run: async ({ ours }) => {
      const k = await ours.checkKernelState();
      return ["kernel:", ...k.rules.map((r) => `  rule  ${r}`), ...k.routes.map((r) => `  route ${r}`)];
    },
  },
  {
    title: "3. ip route get verdicts equal the expected ones",
    run: async ({ ours }) => {
      const rows = await ours.checkVerdicts();
      return [`route get (${rows.length} probes):`, ...rows.map(formatRow)];
    },
  },
  {
    title: "4. real TCP and UDP take the expected paths",
    run: async ({ ours }) => ["traffic:", ...(await ours.checkTraffic()).map(formatTraffic)],
  },
  {
    title: "5. the blog's five ip commands agree except where the spec deliberately differs",
    run: async ({ ours, blog }) => {
      const cmp = await compareWithBlog(ours, blog);
      return [
        "blog commands:",
        ...blog.commands.map((c) => `  ip ${c}`),
        `rule priority: ours ${cmp.priority.ours.join("/")}, blog ${cmp.priority.blog}`,
        `deliberate differences (${cmp.differences.length}):`,
        ...cmp.differences.map((d) => {
          const flow = [d.probe.uid !== undefined ? `uid ${d.probe.uid}` : "", d.probe.dport !== undefined ? `dport ${d.probe.dport}` : "", d.probe.mark !== undefined ? `mark ${d.probe.mark}` : ""]
            .filter(Boolean)
            .join(" ");
          return `  ${d.probe.proto} ${d.probe.dst.padEnd(28)} ${flow.padEnd(20)} ours ${d.ours.padEnd(11)} blog ${d.blog.padEnd(11)} [${d.feature}] ${d.why}`;
        }),
        ...cmp.traffic.map(formatTraffic),
      ];
    },
  },
];

const REGENERATE: Check = {
  title: "6. regenerate on change + networkctl reload leaves exactly the new plan",
  run: async ({ ours }) => {
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
    return [
      `reload: table ${old.table} → ${newTable}, priority ${old.priority ?? "default"} → ${newPriority}, +exclude 203.0.113.0/24; applied in ${r.reloadMs} ms${ours.netdevRecreated ? " (the .netdev changed: tunnel recreated)" : ""}`,
      ...r.after.rules.map((x) => `  rule  ${x}`),
      ...traffic.filter((x) => x.dst === ADDR.server4).map(formatTraffic),
    ];
  },
};

async function outcome(check: Check, c: { ours: SplitCase; blog: BlogReference }): Promise<Outcome> {
  const started = Date.now();
  try {
    return { lines: await check.run(c), ms: Date.now() - started };
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
}

// One blog reference host serves every example (its verdicts do not depend on the spec).
let blogPromise: Promise<BlogReference> | undefined;
const blog = () => (blogPromise ??= BlogReference.create("blog"));

// Every case is set up and checked at once; each suite then reports its own outcomes.
const pending = new Map<string, Promise<Case>>();
function setUp(name: string): Promise<Case> {
  if (!pending.has(name)) {
    pending.set(
      name,
      (async () => {
        const started = Date.now();
        const raw = await readSpec(join(examplesDir, name));
        const tag = basename(name).replace(/\.(toml|json)$/, "").replace(/[^a-z0-9]/gi, "").slice(0, 8);
        const ours = await SplitCase.create(tag, raw);
        try {
          await ours.generate(raw, name.endsWith(".json") ? "json" : "toml");
          await ours.apply();
          const c = { ours, blog: await blog() };
          const checked = Date.now();
          const outcomes = await Promise.all(READ_ONLY.map((check) => outcome(check, c)));
          const readOnlyMs = Date.now() - checked;
          outcomes.push(await outcome(REGENERATE, c));
          console.log(
            `\n${name}: topology ${ours.lab.timings.topology} ms, apply ${ours.applyMs} ms, ` +
              `assertions 1-5 ${readOnlyMs} ms (${outcomes.slice(0, 5).map((o) => o.ms).join("/")}), ` +
              `assertion 6 (regenerate + reload + recheck) ${outcomes[5]!.ms} ms, case ${Date.now() - started} ms`,
          );
          return { ...c, outcomes };
        } catch (err) {
          await ours.destroy();
          throw err;
        }
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
  [...READ_ONLY, REGENERATE].forEach((check, i) => {
    t.test(check.title, async (c) => {
      const o = c.outcomes[i]!;
      if (o.error) throw o.error;
      say(o.lines!);
    });
  });
  t.run();
}

// Runs after every example's lab is torn down: the lab mounts over these only inside its own
// mount namespaces, on fresh tmpfs, and must not leave them behind on the machine.
const hygiene = labSuite("lab: the machine's directories as the lab found them");
hygiene.test("no mount point of the lab was left on the machine", () => {
  assert.equal(MOUNT_POINTS.filter((path, i) => existsSync(path) !== mountPointsBefore[i]), []);
});
hygiene.run();
