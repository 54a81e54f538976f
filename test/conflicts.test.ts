// policyOf reads what a unit file of ours claims without parsing every section: checked
// against the files the generator writes and against the corner cases of that shortcut.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { join } from "node:path";
import { policyOf } from "../src/conflicts.js";
import { generate } from "../src/generate.js";

const root = new URL("..", import.meta.url).pathname;

test("the laptop example's files: table, priorities, fwmark, and which rules capture or answer from main", async () => {
  const { files } = await generate(join(root, "examples/laptop.toml"), { outputDir: "out", prefix: "50" });
  const of = (name: string) => policyOf(files.find((f) => f.fileName === name)!.content);
  const anchor = of("50-wg0-split.network");
  assert.equal([...anchor.claims.get("table")!], ["10086"]);
  assert.equal([...anchor.claims.get("priority")!].map(Number).sort((a, b) => a - b), [10084, 10085, 10086, 10087, 10088, 10089]);
  assert.ok(anchor.capture.length > 0 && anchor.answer.length > 0);
  assert.ok(Math.max(...anchor.answer) < Math.max(...anchor.capture), "the inbound answers come before the last capture rules");
  assert.equal([...of("50-wg0.netdev").claims.get("fwmark")!], ["10086"], "the tunnel's own mark, from [WireGuard]");
  assert.equal([...of("50-wg0.network").claims.get("table")!], ["10086"], "the tunnel's routes");
});

test("only keys at the start of a line of their own sections count: RouteTable=, comments and main/local tables do not", () => {
  const policy = policyOf(
    [
      "# Table=999 in a comment",
      "[WireGuard]",
      "RouteTable=off",
      "FirewallMark=0x2766/0xffff",
      "",
      "# [RoutingPolicyRule] in a comment",
      "[RoutingPolicyRule]",
      "Table=main",
      "IncomingInterface=lo",
      "Priority=300",
      "",
      "[RoutingPolicyRule]",
      "Table=main",
      "SuppressPrefixLength=0",
      "Priority=200",
      "",
      "[RoutingPolicyRule]",
      "Priority=400",
      "Table=77",
      "",
      "[Route]",
      "Table=77",
      "Destination=10.0.0.0/8",
    ].join("\n"),
  );
  assert.equal(Object.fromEntries([...policy.claims].map(([k, v]) => [k, [...v]])), { table: ["77"], priority: ["300", "200", "400"], fwmark: ["0x2766"] });
  assert.equal(policy.capture, [400]);
  assert.equal(policy.answer, [300]);
});

test.run();
