// An edit that changes only what a .network configures must let NixOS reload networkd,
// not restart it. nixpkgs (nixos/modules/system/boot/networkd.nix, the stage-2 config of
// systemd.services.systemd-networkd) sets
//   reloadTriggers  = the sources of the unit files whose names end in ".network";
//   restartTriggers = the sources of every other unit file (.netdev, .link), and
//                     environment.etc."systemd/networkd.conf".source;
// each source is the store path of the unit NixOS renders from systemd.network.netdevs.NAME
// (networks.NAME), so it changes exactly when those attributes do. A restart instead of a
// reload leaves the previous rules behind (README, "Applying and checking"). So: the emitted
// module's netdevs and networkd.conf settings must stay equal under an exclude edit, while
// the .network carrying the throws changes.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { generate } from "../../src/generate.js";
import { Nix, nixTest } from "./nix.js";

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

test.run();
