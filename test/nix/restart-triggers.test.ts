// An edit that changes only what a .network configures must let NixOS reload networkd,
// not restart it, with the emitted module and with the flake's module. nixpkgs (nixos/modules/system/boot/networkd.nix, the stage-2 config of
// systemd.services.systemd-networkd) sets
//   reloadTriggers  = the sources of the unit files whose names end in ".network";
//   restartTriggers = the sources of every other unit file (.netdev, .link), and
//                     environment.etc."systemd/networkd.conf".source;
// each source is the store path of the unit NixOS renders from systemd.network.netdevs.NAME
// (networks.NAME), so it changes exactly when those attributes do. A restart instead of a
// reload leaves the previous rules behind (README, "Applying and checking"). So: the emitted
// module's netdevs and networkd.conf settings must stay equal under an exclude edit, while
// the .network carrying the throws changes. The flake's module (nix/module.nix) installs the
// generator's files from one build of the whole spec, whose store paths change with any edit;
// its restart triggers are what the restarting files are made of (nix/restart-inputs.nix),
// so equal inputs must mean byte-equal files.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadSpec } from "../../src/load.js";
import { generate } from "../../src/generate.js";
import type { Plan } from "../../src/model.js";
import { buildPlan, PlanError } from "../../src/plan.js";
import { renderNetworkd } from "../../src/render-networkd.js";
import { validateSpec } from "../../src/spec.js";
import { Nix, nixTest } from "./nix.js";
import { validSpec } from "./spec-arbitrary.js";

const test = suite("restart-triggers");
const root = new URL("../..", import.meta.url).pathname;
const nix = new Nix();
test.after(() => nix.dispose());

type SystemdNetwork = { netdevs: Record<string, unknown>; networks: Record<string, unknown>; config: unknown };

/** The module the CLI writes (--format nix) for each spec text, evaluated in one nix-instantiate call. */
async function evaluatedModules(specs: readonly string[]): Promise<SystemdNetwork[]> {
  const modules: string[] = [];
  for (const [i, text] of specs.entries()) {
    const spec = nix.file(`spec${i}.toml`, text);
    const { files } = await generate(spec, { outputDir: join(nix.root, `out${i}`), prefix: "50", format: "nix" });
    modules.push(nix.file(`module${i}.nix`, files.find((f) => f.fileName.endsWith(".nix"))!.content));
  }
  return nix.evalJson(`map (path: ((import path) {}).systemd.network) [ ${modules.map((m) => JSON.stringify(m)).join(" ")} ]`) as SystemdNetwork[];
}

for (const example of ["seed.toml", "laptop.toml"]) {
  nixTest(test, `item 13: examples/${example} with one exclusion more: the netdevs and networkd.conf (restartTriggers) stay, a .network (reloadTriggers) changes`, async () => {
    const text = readFileSync(join(root, "examples", example), "utf8");
    // One prefix more in split.exclude (the default is ["@local"]).
    const edited = /^exclude = \[/m.test(text) ? text.replace(/^exclude = \[/m, 'exclude = ["198.18.0.0/15", ') : text.replace(/^\[split\]\n/m, '[split]\nexclude = ["@local", "198.18.0.0/15"]\n');
    assert.is.not(edited, text);
    const newPort = text.replace(/^listen_port = 51820$/m, "listen_port = 51821");
    assert.is.not(newPort, text);
    const [before, after, otherPort] = await evaluatedModules([text, edited, newPort]);
    assert.not.equal(otherPort!.netdevs, before!.netdevs, "a netdev edit shows (the comparison can fail)");
    assert.ok(Object.keys(before!.netdevs).length >= 2, "the tunnel's and the anchor's netdevs");
    assert.equal(after!.netdevs, before!.netdevs, "a netdev changed: NixOS would restart networkd");
    assert.equal(after!.config, before!.config, "networkd.conf changed: NixOS would restart networkd");
    const changed = Object.keys(before!.networks).filter((name) => JSON.stringify(before!.networks[name]) !== JSON.stringify(after!.networks[name]));
    assert.equal(changed, ["50-wg0-split"], "only the anchor's .network, which carries the throws, changes");
  });
}

const restartInputsNix = JSON.stringify(join(root, "nix/restart-inputs.nix"));
type RestartInputs = { networkd: string; resolved: string };

/** nix/restart-inputs.nix for spec documents as a user writes them, in one evaluation. */
function restartInputs(cases: readonly { document: unknown; anchors: number }[]): RestartInputs[] {
  cases.forEach((c, i) => nix.file(`inputs${i}.json`, JSON.stringify(c.document)));
  const calls = cases.map((c, i) => `(import ${restartInputsNix} { spec = builtins.fromJSON (builtins.readFile ./inputs${i}.json); prefix = "50"; anchors = ${c.anchors}; })`);
  return nix.evalJson(`[\n${calls.join("\n")}\n]`) as RestartInputs[];
}

/** The files that restart networkd (.netdev, the networkd.conf drop-in) and resolved (its drop-in), by name, as the flake's build writes them. */
function restartingFiles(plan: Plan): { networkd: Record<string, string>; resolved: Record<string, string> } {
  const files = renderNetworkd(plan, "wg0.json");
  const of = (kinds: string[]) => Object.fromEntries(files.filter((f) => kinds.includes(f.unit.kind)).map((f) => [f.unit.fileName, f.content]));
  return { networkd: of(["netdev", "networkd-conf"]), resolved: of(["resolved-conf"]) };
}

const anchorCount = (plan: Plan) => plan.units.filter((u) => u.kind === "netdev" && u.sections.some((s) => "entries" in s && s.entries.some((e) => e.key === "Kind" && e.value === "bridge"))).length;

function planOf(document: unknown): Plan | undefined {
  const validated = validateSpec(document);
  if (!validated.ok) return undefined;
  try {
    return buildPlan(validated.spec, { prefix: "50" });
  } catch (error) {
    if (error instanceof PlanError) return undefined;
    throw error;
  }
}

for (const example of ["seed.toml", "laptop.toml", "dns.toml"]) {
  nixTest(test, `item 13, the flake's module: examples/${example} with one exclusion more keeps its restart inputs; a new listen port changes them`, async () => {
    const { document } = await loadSpec(join(root, "examples", example));
    const spec = document as { tunnel: Record<string, unknown>; split?: Record<string, unknown> };
    const excluded = { ...spec, split: { ...spec.split, exclude: [...((spec.split?.exclude as string[] | undefined) ?? ["@local"]), "198.18.0.0/15"] } };
    const newPort = { ...spec, tunnel: { ...spec.tunnel, listen_port: 51821 } };
    const [before, after, otherPort] = restartInputs([document, excluded, newPort].map((d) => ({ document: d, anchors: 1 })));
    assert.equal(after, before);
    assert.is.not(otherPort!.networkd, before!.networkd);
    const [filesBefore, filesAfter] = [document, excluded].map((d) => restartingFiles(planOf(d)!));
    assert.equal(filesAfter, filesBefore, "and the files they stand for are the same bytes");
  });
}

nixTest(test, "item 13, the flake's module: random specs and the same specs with another split and addresses: equal restart inputs mean byte-equal files", () => {
  // What the inputs leave out: the split but for protocols, table, fwmark and anchor; the tunnel's addresses and MTU.
  const mixed = (a: { tunnel: Record<string, unknown>; split: Record<string, unknown> }, b: typeof a) => {
    const split: Record<string, unknown> = { ...b.split };
    for (const key of ["protocols", "table", "fwmark", "anchor"]) {
      if (key in a.split) split[key] = a.split[key];
      else delete split[key];
    }
    const tunnel: Record<string, unknown> = { ...a.tunnel, addresses: b.tunnel.addresses };
    if ("mtu" in b.tunnel) tunnel.mtu = b.tunnel.mtu;
    else delete tunnel.mtu;
    return { version: 1, tunnel, split };
  };
  let equalInputs = 0;
  fc.assert(
    fc.property(fc.array(fc.tuple(validSpec, validSpec), { minLength: 5, maxLength: 15 }), (pairs) => {
      const cases = pairs.flatMap(([a, b]) => {
        const other = mixed(a as never, b as never);
        const [planA, planB] = [planOf(a), planOf(other)];
        return planA && planB ? [{ documents: [a, other], plans: [planA, planB] }] : [];
      });
      const inputs = restartInputs(cases.flatMap((c) => c.documents.map((document, i) => ({ document, anchors: anchorCount(c.plans[i]!) }))));
      cases.forEach((c, i) => {
        const [a, b] = [inputs[2 * i]!, inputs[2 * i + 1]!];
        const [filesA, filesB] = c.plans.map(restartingFiles);
        if (a.networkd === b.networkd) {
          equalInputs++;
          assert.equal(filesB!.networkd, filesA!.networkd, JSON.stringify(c.documents));
        }
        if (a.resolved === b.resolved) assert.equal(filesB!.resolved, filesA!.resolved, JSON.stringify(c.documents));
      });
    }),
    { numRuns: 10, includeErrorInReport: true },
  );
  assert.ok(equalInputs > 20, `only ${equalInputs} pairs with equal inputs: the property says little`);
});

test.run();
