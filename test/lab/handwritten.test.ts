// The lab on hand-written files shaped like the generator's output: proves the
// lab itself (topology, real networkd, wireguard-go, real traffic) independently
// of the generator, and that the lab catches broken files.
import * as assert from "uvu/assert";
import { labSuite } from "./harness.js";
import { SplitCase, formatRow, formatTraffic } from "./case.js";
import { handGenerator, SEED_SPEC } from "./handwritten.js";

const verbose = !!process.env.GEN_NETWORKD_LAB_VERBOSE;

const good = labSuite(
  "lab: hand-written seed files",
  async () => {
    const c = await SplitCase.create("hand", handGenerator());
    try {
      await c.generate(SEED_SPEC);
      await c.apply();
    } catch (err) {
      await c.destroy();
      throw err;
    }
    return c;
  },
  (c) => c.destroy(),
);

good.test("networkd reports no warning", async (c) => {
  await c.checkNoWarnings();
});

good.test("the kernel holds exactly the planned rules and routes", async (c) => {
  const k = await c.checkKernelState();
  if (verbose) console.log("\n" + [...k.rules, ...k.routes].join("\n"));
});

good.test("ip route get verdicts equal the expected ones", async (c) => {
  const rows = await c.checkVerdicts();
  if (verbose) console.log("\n" + rows.map(formatRow).join("\n"));
});

good.test("real TCP and UDP take the expected paths", async (c) => {
  const rows = await c.checkTraffic();
  if (verbose) console.log("\n" + rows.map(formatTraffic).join("\n"));
  assert.ok(c.applyMs > 0);
});

good.run();
