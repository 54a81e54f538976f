// The flake's NixOS module computes two things in Nix, from the spec alone, that
// the tests can check with a bare evaluator: where the generator's files go
// (nix/files.nix, compared with the generator's own output), and whether a spec
// would copy key material into the Nix store (nix/secrets.nix).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { generate } from "../../src/generate.js";
import { loadSpec } from "../../src/load.js";
import type { Plan, Unit } from "../../src/model.js";
import { buildPlan, ROUTES_PER_NETWORK } from "../../src/plan.js";
import { renderNix } from "../../src/render-nix.js";
import { AddressSet } from "../../src/prefix.js";
import { validateSpec } from "../../src/spec.js";
import { Nix, nixTest } from "./nix.js";
import { generatable, validSpec } from "./spec-arbitrary.js";

const test = suite("nixos-module");
const root = new URL("../..", import.meta.url).pathname;
const nix = new Nix();
test.after(() => nix.dispose());

const filesNix = JSON.stringify(join(root, "nix/files.nix"));
const secretsNix = JSON.stringify(join(root, "nix/secrets.nix"));

/** Where NixOS must link each file of a plan: networkd units in systemd/network, the drop-ins in systemd/networkd.conf.d, systemd/resolved.conf.d and systemd/system/SERVICE.d. */
function etcPaths(plan: Plan): string[] {
  const dir = (u: Unit) =>
    u.kind === "service-drop-in" ? `systemd/system/${u.service}.d` : { netdev: "systemd/network", network: "systemd/network", "networkd-conf": "systemd/networkd.conf.d", "resolved-conf": "systemd/resolved.conf.d" }[u.kind];
  return plan.units.map((u) => `${dir(u)}/${u.fileName}`).sort();
}

/** nix/files.nix over spec documents as a user writes them (defaults left out), in one evaluation. */
function nixEtcPaths(cases: readonly { document: unknown; prefix: string; anchors?: number }[]): string[][] {
  cases.forEach((c, i) => nix.file(`spec${i}.json`, JSON.stringify(c.document)));
  const calls = cases.map(
    (c, i) => `(import ${filesNix} { spec = builtins.fromJSON (builtins.readFile ./spec${i}.json); prefix = ${JSON.stringify(c.prefix)};${c.anchors === undefined ? "" : ` anchors = ${c.anchors};`} })`,
  );
  return (nix.evalJson(`[\n${calls.join("\n")}\n]`) as string[][]).map((paths) => [...paths].sort());
}

nixTest(test, "nix/files.nix names exactly the files the generator writes, for every example", async () => {
  const examples = readdirSync(join(root, "examples"), { recursive: true, encoding: "utf8" })
    .filter((n) => /\.(toml|json)$/.test(n))
    .sort();
  const cases = [];
  for (const name of examples) {
    const path = join(root, "examples", name);
    const { document } = await loadSpec(path);
    const { plan } = await generate(path, { outputDir: "out", prefix: "50" });
    cases.push({ name, document, prefix: "50", expected: etcPaths(plan) });
  }
  const fromNix = nixEtcPaths(cases);
  cases.forEach((c, i) => assert.equal(fromNix[i], c.expected, `examples/${c.name}`));
});

nixTest(test, "nix/files.nix with the anchor count of a long list names the generator's files for it", async () => {
  const document = { version: 1, tunnel: { interface: "wg0", addresses: ["10.253.0.2/32"], manage: false }, split: { exclude: [], exclude_files: ["long.txt"], ipv6: "direct" } };
  const validated = validateSpec(document);
  if (!validated.ok) throw new Error(JSON.stringify(validated.problems));
  const spec = validated.spec;
  const exclude = AddressSet.of(Array.from({ length: 2 * ROUTES_PER_NETWORK + 1 }, (_, i) => ({ family: 4 as const, network: BigInt(0x01000000 + i * 512), length: 24 })));
  const expected = etcPaths(buildPlan(spec, { prefix: "50", lists: { exclude } }));
  assert.equal(expected.filter((p) => p.endsWith(".netdev")).length, 3);
  assert.equal(nixEtcPaths([{ document, prefix: "50", anchors: 3 }])[0], expected);
});

nixTest(test, "nix/files.nix names exactly the files the generator writes, for random specs", () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(validSpec, fc.integer({ min: 10, max: 99 })), { minLength: 10, maxLength: 30 }), (specs) => {
      const cases = specs.flatMap(([document, n]) => {
        const spec = generatable(document);
        const prefix = String(n);
        return spec ? [{ document, prefix, expected: etcPaths(buildPlan(spec, { prefix })) }] : [];
      });
      const fromNix = nixEtcPaths(cases);
      cases.forEach((c, i) => assert.equal(fromNix[i], c.expected, JSON.stringify(c.document)));
    }),
    { numRuns: 10, includeErrorInReport: true },
  );
});

const servicesNix = JSON.stringify(join(root, "nix/services.nix"));
/** What the generator's own module says about the wait-online program: the NixOS system profile's. */
const WAIT_ONLINE_ON_NIXOS = "/run/current-system/systemd/lib/systemd/systemd-networkd-wait-online";

nixTest(test, "nix/services.nix sets for split.killswitch_before exactly what the generator's --format nix module sets, also with several anchors", () => {
  const document = (killswitchBefore: string[]) => ({
    version: 1,
    tunnel: { interface: "wg0", addresses: ["10.253.0.2/32"], manage: false },
    split: { exclude: [], exclude_files: ["long.txt"], ipv6: "direct", killswitch: true, killswitch_before: killswitchBefore },
  });
  for (const [services, anchors] of [[["NetworkManager.service"], 1], [["NetworkManager.service", "networking.service", "getty@tty1.service"], 3]] as const) {
    const validated = validateSpec(document([...services]));
    if (!validated.ok) throw new Error(JSON.stringify(validated.problems));
    const exclude = AddressSet.of(Array.from({ length: (anchors - 1) * ROUTES_PER_NETWORK + 1 }, (_, i) => ({ family: 4 as const, network: BigInt(0x01000000 + i * 512), length: 24 })));
    const plan = buildPlan(validated.spec, { prefix: "50", lists: { exclude } });
    nix.file("rendered.nix", renderNix(plan, []));
    nix.file("spec.json", JSON.stringify(document([...services])));
    const [rendered, fromSpec] = nix.evalJson(`[
      ((import ./rendered.nix) {}).systemd.services
      (import ${servicesNix} { spec = builtins.fromJSON (builtins.readFile ./spec.json); anchors = ${anchors}; waitOnline = ${JSON.stringify(WAIT_ONLINE_ON_NIXOS)}; })
    ]`) as [Record<string, any>, Record<string, any>];
    assert.equal(fromSpec, rendered, `${services.join(", ")} with ${anchors} anchors`);
    assert.equal(Object.keys(rendered).sort(), services.map((s) => s.replace(/\.service$/, "")).sort());
    assert.match(rendered.NetworkManager.serviceConfig.ExecStartPre[0], anchors === 3 ? /--interface=wg0-split:no-carrier --interface=wg0-split-2:no-carrier --interface=wg0-split-3:no-carrier/ : /--interface=wg0-split:no-carrier --timeout/);
  }
});

nixTest(test, "nix/secrets.nix finds inline keys and key files given as Nix paths, anywhere in the spec", () => {
  nix.file("wg0.key", "not a real key\n");
  const found = nix.evalJson(`import ${secretsNix} {
    tunnel = {
      private_key = "inline";
      private_key_file = ./wg0.key;
      peers = [ { public_key = "x"; } { preshared_key_file = ./wg0.key; preshared_key = "inline"; } ];
    };
  }`);
  assert.equal(found, ["tunnel.peers.1.preshared_key", "tunnel.peers.1.preshared_key_file", "tunnel.private_key", "tunnel.private_key_file"]);
});

nixTest(test, "nix/secrets.nix accepts key files named by strings (agenix, sops-nix paths)", () => {
  const found = nix.evalJson(`import ${secretsNix} {
    version = 1;
    tunnel = {
      interface = "wg0";
      private_key_file = "/run/agenix/wg0-key";
      peers = [ { public_key = "4kQT3smJgD94joC+o+whDz6zEdg42kZIryzw0Rw2w24="; preshared_key_file = "/run/secrets/wg0-psk"; } ];
    };
    split.exclude = [ "@local" ];
  }`);
  assert.equal(found, []);
});

test.run();
