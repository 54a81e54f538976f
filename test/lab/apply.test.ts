// apply end to end in the lab host: the real networkd, networkctl over the host's
// private D-Bus, and doctor at the end. The seed spec is applied first (by the
// lab), then apply is run inside the host as a user would:
//   - nothing changed: nothing written, doctor's verdict;
//   - no terminal, no --yes: the diff and a refusal, nothing written;
//   - a .network change (one more exclusion): written, `networkctl reload`, the
//     kernel holds the new throw, no tunnel recreated, doctor passes;
//   - a .netdev change (another listen port): apply says it recreates wg0 and runs
//     `networkctl delete wg0` + reload. networkd cannot create a WireGuard device in
//     this kernel, so the lab's wireguard-go stands in for that creation, from the
//     new .netdev; networkd configures the new link and doctor passes.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import TOML from "@iarna/toml";
import * as assert from "uvu/assert";
import { labSuite } from "./harness.js";
import { CLI, ROOT, SplitCase } from "./case.js";
import { readSpec } from "./expect.js";
import { CommandError, poll, run } from "./proc.js";

const steps: string[] = [];

async function setUp(): Promise<SplitCase> {
  const raw = await readSpec(join(ROOT, "examples/seed.toml"));
  return SplitCase.applied("apply", raw);
}

/** Runs `gen-networkd apply` inside the host; its exit code and output. */
async function apply(c: SplitCase, extra: string[] = ["--yes"]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(c.lab.hostArgv([process.execPath, CLI, "apply", c.specPath, "-o", c.lab.genDir, ...extra]), { timeoutMs: 90_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    return { code: Number(error.code), stdout: error.stdout, stderr: error.stderr };
  }
}

async function editSpec(c: SplitCase, edit: (spec: Record<string, any>) => void): Promise<void> {
  const spec = TOML.parse(await readFile(c.specPath, "utf8")) as Record<string, any>;
  edit(spec);
  await writeFile(c.specPath, TOML.stringify(spec as TOML.JsonMap));
}

const t = labSuite("lab: apply end to end", setUp, async (c) => {
  if (steps.length) console.log(`apply in the lab:\n  ${steps.join("\n  ")}`);
  await c.destroy();
});

t.test("nothing changed: nothing written or reloaded, doctor passes", async (c) => {
  const { code, stdout } = await apply(c);
  assert.is(code, 0, stdout);
  assert.match(stdout, /already holds what .* generates; nothing to write or reload/);
  assert.match(stdout, /^all \d+ checks passed$/m);
  steps.push("unchanged: nothing written, doctor passed");
});

t.test("no terminal and no --yes: the diff, a refusal (exit 3), nothing written", async (c) => {
  await editSpec(c, (spec) => spec.split.exclude.push("198.18.0.0/15"));
  const before = await readFile(join(c.lab.genDir, "50-wg0-split.network"), "utf8");
  const { code, stdout, stderr } = await apply(c, []);
  assert.is(code, 3, stderr);
  assert.match(stdout, /^\+Destination=198\.18\.0\.0\/15$/m);
  assert.match(stderr, /apply: no terminal to confirm on, so nothing was written/);
  assert.is(await readFile(join(c.lab.genDir, "50-wg0-split.network"), "utf8"), before);
  steps.push("no terminal: refused with exit 3, nothing written");
});

t.test("a .network change: written, networkctl reload, the kernel holds it, tunnel kept, doctor passes", async (c) => {
  const wg0Before = JSON.parse(await c.lab.ip("H", ["-j", "link", "show", "wg0"]))[0].ifindex;
  const { code, stdout } = await apply(c);
  assert.is(code, 0, stdout);
  assert.match(stdout, /50-wg0-split\.network +updated/);
  assert.not.match(stdout, /recreating/);
  assert.match(stdout, /^networkctl reload$/m);
  assert.match(stdout, /^all \d+ checks passed$/m);
  const throws = (await c.lab.routes("10086", "ipv4")).map((r) => `${r.type} ${r.dst}`);
  assert.ok(throws.includes("throw 198.18.0.0/15"), `table 10086: ${throws.join(", ")}`);
  assert.is(JSON.parse(await c.lab.ip("H", ["-j", "link", "show", "wg0"]))[0].ifindex, wg0Before, "wg0 was not recreated");
  steps.push("exclusion added: written, reloaded, throw 198.18.0.0/15 in table 10086, wg0 kept, doctor passed");
});

t.test("a .netdev change: apply recreates wg0 (networkctl delete + reload), networkd configures the new link, doctor passes", async (c) => {
  await editSpec(c, (spec) => (spec.tunnel.listen_port = 51999));
  const wg0Before = JSON.parse(await c.lab.ip("H", ["-j", "link", "show", "wg0"]))[0].ifindex;
  const running = apply(c);
  // Stand in for networkd creating the device from the new .netdev, once apply has deleted it.
  await poll("apply to delete wg0", async () => ((await c.lab.ip("H", ["-j", "link", "show"])).includes('"ifname":"wg0"') ? undefined : true), { timeoutMs: 30_000 });
  await c.lab.startHostWireguard((await c.wireguardNetdev())!);
  const { code, stdout } = await running;
  assert.is(code, 0, stdout);
  assert.match(stdout, /50-wg0\.netdev +updated/);
  assert.match(stdout, /^recreating wg0: its \.netdev changed .* wg0 drops for a moment$/m);
  assert.match(stdout, /^wg0: configured, wg0-split: configured$/m);
  assert.match(stdout, /^all \d+ checks passed$/m);
  assert.ok(JSON.parse(await c.lab.ip("H", ["-j", "link", "show", "wg0"]))[0].ifindex !== wg0Before, "wg0 is a new link");
  assert.match(await c.lab.inHost(["wg", "show", "wg0", "listen-port"]), /^51999$/m);
  steps.push("listen port changed: 'recreating wg0', networkctl delete wg0 + reload, new wg0 (listen port 51999) configured, doctor passed");
});

t.run();
