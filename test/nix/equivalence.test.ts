// The NixOS module and the networkd files say the same thing.
//
// For every example spec and for random valid specs, the module is evaluated by
// the real Nix evaluator, NixOS's rendering rules turn the evaluated options back
// into networkd sections, and those must equal the networkd files the generator
// writes directly (section by section, keys sorted, sections in NixOS's order).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { readdirSync } from "node:fs";
import { generate } from "../../src/generate.js";
import type { Plan } from "../../src/model.js";
import { headerLines } from "../../src/ownership.js";
import { buildPlan } from "../../src/plan.js";
import { renderNetworkd } from "../../src/render-networkd.js";
import { renderNix } from "../../src/render-nix.js";
import { parseUnitFile } from "../../src/unitfile.js";
import { Nix, nixTest } from "./nix.js";
import { comparable, LOOSE_BY_DEFAULT, nixosNetworkdFiles, nixosResolvedConf, nixosServiceDropIns, uncheckedKeys } from "./nixos-render.js";
import { generatable, validSpec } from "./spec-arbitrary.js";
import { loadTemplates } from "../../src/templates.js";

await loadTemplates();

const test = suite("nix-equivalence");
const nix = new Nix();
test.after(() => nix.dispose());

const examplesDir = new URL("../../examples/", import.meta.url).pathname;
// Subdirectories too: an example with prefix list files keeps them beside its spec.
const exampleSpecs = readdirSync(examplesDir, { recursive: true, encoding: "utf8" })
  .filter((name) => /\.(toml|json)$/.test(name))
  .sort();

interface Case {
  readonly label: string;
  readonly plan: Plan;
  readonly specName: string;
}

/** Direct networkd output, keyed the way NixOS's rendering names it. */
function directFiles({ plan, specName }: Case): Map<string, ReturnType<typeof comparable>> {
  return new Map(
    renderNetworkd(plan, specName).map(({ unit, content }) => [
      unit.kind === "networkd-conf" ? "networkd.conf" : unit.kind === "resolved-conf" ? "resolved.conf" : unit.kind === "service-drop-in" ? `${unit.service}.d` : unit.fileName,
      comparable(parseUnitFile(content)),
    ]),
  );
}

/**
 * Evaluates the modules of all cases in one nix-instantiate call and compares each with
 * its networkd files; with `parse`, first parses each module on its own too.
 */
function assertEquivalent(cases: readonly Case[], { parse = false } = {}): void {
  const paths = cases.map((c, i) => nix.file(`case${i}.nix`, renderNix(c.plan, headerLines(c.plan.identity, c.specName, c.plan.specHash))));
  if (parse) for (const path of paths) nix.parse(path);
  const imports = cases.map((_, i) => `((import ./case${i}.nix) {})`).join("\n");
  const values = nix.evalJson(`[\n${imports}\n]`) as { networking: unknown; services?: never; systemd: { network: never; services?: never } }[];
  cases.forEach((c, i) => {
    const value = values[i]!;
    const resolved = c.plan.units.some((u) => u.kind === "resolved-conf");
    const ordered = c.plan.units.some((u) => u.kind === "service-drop-in");
    assert.equal(Object.keys(value), resolved ? ["networking", "services", "systemd"] : ["networking", "systemd"], `${c.label}: the module sets systemd.network, the firewall and (DNS kill switch) resolved only`);
    assert.equal(Object.keys(value.systemd), ordered ? ["network", "services"] : ["network"], `${c.label}: systemd.services only for split.killswitch_before`);
    assert.equal(value.networking, { firewall: { checkReversePath: LOOSE_BY_DEFAULT } }, c.label);
    const fromNixos = new Map([...nixosNetworkdFiles(value.systemd.network)].map(([name, sections]) => [name, comparable(sections)]));
    if (value.services !== undefined) fromNixos.set("resolved.conf", comparable(nixosResolvedConf(value.services)));
    if (value.systemd.services !== undefined) for (const [name, sections] of nixosServiceDropIns(value.systemd.services)) fromNixos.set(name, comparable(sections));
    assert.equal(fromNixos, directFiles(c), c.label);
    assert.equal(uncheckedKeys(value.systemd.network), [], `${c.label}: keys not yet checked against NixOS's networkd module (see CHECKED_AGAINST_NIXOS)`);
  });
}

test("the examples directory has specs to compare", () => {
  assert.ok(exampleSpecs.length > 0);
});

nixTest(test, "every example spec: the module parses and maps back to exactly the networkd files", async () => {
  const cases: Case[] = [];
  for (const name of exampleSpecs) {
    const { plan } = await generate(`${examplesDir}${name}`, { outputDir: "out", prefix: "50" });
    cases.push({ label: `examples/${name}`, plan, specName: name });
  }
  assertEquivalent(cases, { parse: true });
});

nixTest(test, "random valid specs: the module maps back to exactly the networkd files", () => {
  // Each run is one nix-instantiate call over a batch of modules.
  fc.assert(
    fc.property(fc.array(fc.tuple(validSpec, fc.integer({ min: 10, max: 99 })), { minLength: 5, maxLength: 15 }), (specs) => {
      const cases = specs.flatMap(([document, prefix], i): Case[] => {
        const spec = generatable(document);
        return spec ? [{ label: JSON.stringify(document), plan: buildPlan(spec, { prefix: String(prefix) }), specName: `random${i}.json` }] : [];
      });
      assertEquivalent(cases);
    }),
    { numRuns: 12, includeErrorInReport: true },
  );
});

test.run();
