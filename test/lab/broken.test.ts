// The lab must fail when a generated file is wrong: damage the real CLI's output
// for the seed example in two ways networkd itself does not refuse, and check
// that the assertions that should catch each one do.
//   - an unknown key: networkd ignores it with a warning (assertion 1)
//   - a wrong table in the policy rule: networkd applies it as written, so the
//     kernel matches the file (the plan), but not the spec (assertion 2), the
//     kernel's verdicts (assertion 3) and the real traffic (assertion 4)
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as assert from "uvu/assert";
import { labSuite, labUnavailable } from "./harness.js";
import { cliGenerator, ROOT, SplitCase, type Generator } from "./case.js";
import { readSpec } from "./expect.js";

/** The CLI's output, then EDIT applied to the .network file holding the policy rules. */
function damaged(edit: (text: string) => string): Generator {
  return async (specPath, outDir) => {
    await cliGenerator(specPath, outDir);
    for (const name of await readdir(outDir)) {
      if (!name.endsWith(".network")) continue;
      const text = await readFile(join(outDir, name), "utf8");
      if (text.includes("[RoutingPolicyRule]")) await writeFile(join(outDir, name), edit(text));
    }
  };
}

const BREAKAGES = {
  unknownKey: damaged((t) => t.replace("[RoutingPolicyRule]\n", "[RoutingPolicyRule]\nFoo=1\n")),
  // Every rule that looks up the split table now looks up another one.
  wrongTable: damaged((t) => t.replace(/^(\[RoutingPolicyRule\][^[]*?)Table=10086$/gms, "$1Table=10087")),
};

async function start(kind: keyof typeof BREAKAGES): Promise<SplitCase> {
  const raw = await readSpec(join(ROOT, "examples", "seed.toml"));
  return SplitCase.applied(kind === "unknownKey" ? "brkkey" : "brktbl", raw, BREAKAGES[kind]);
}

/** Runs CHECK, which must throw; returns its message. */
async function mustFail(check: () => Promise<unknown>): Promise<string> {
  try {
    await check();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error("the check passed on a broken file");
}

// Both labs are built at once.
const cases = labUnavailable() ? undefined : { unknownKey: start("unknownKey"), wrongTable: start("wrongTable") };
for (const p of Object.values(cases ?? {})) p.catch(() => {});

const key = labSuite("lab: a generated file with an unknown key", () => cases!.unknownKey, (c) => c.destroy());
key.test("assertion 1 fails with networkd's own message", async (c) => {
  const message = await mustFail(() => c.checkNoWarnings());
  assert.match(message, /Unknown key 'Foo' in section \[RoutingPolicyRule\], ignoring/);
});
key.test("assertion 2 names the key it cannot vouch for", async (c) => {
  assert.match(await mustFail(() => c.checkKernelState()), /\[RoutingPolicyRule\] Foo=1 is not a key/);
});
key.run();

const table = labSuite("lab: a generated rule with the wrong table", () => cases!.wrongTable, (c) => c.destroy());
table.test("networkd applies it without a warning (so assertion 1 alone would not do)", async (c) => {
  await c.checkNoWarnings();
});
table.test("assertion 2 fails: the kernel holds the file, but not the spec's table", async (c) => {
  assert.match(await mustFail(() => c.checkKernelState()), /no ipv4 tcp rule looking up table 10086/);
});
table.test("assertion 3 fails: TCP to the internet no longer goes to the tunnel", async (c) => {
  assert.match(await mustFail(() => c.checkVerdicts()), /tcp 203\.0\.113\.80 .* expected tunnel +kernel direct/);
});
table.test("assertion 4 fails: the internet server sees the LAN address", async (c) => {
  assert.match(await mustFail(() => c.checkTraffic()), /TCP to the internet server:7777 .* got server saw 192\.168\.50\.2/);
});
table.run();
