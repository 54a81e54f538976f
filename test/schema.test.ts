// The committed JSON Schema is the generated one, `gen-networkd schema` prints it,
// and every example validates against it with an independent validator (ajv),
// the TOML ones too, once parsed.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import { loadSpec } from "../src/load.js";
import { schemaText } from "../src/schema.js";

const root = new URL("..", import.meta.url).pathname;
const committedPath = join(root, "schema/spec.schema.json");
const committed = readFileSync(committedPath, "utf8");
const examples = readdirSync(join(root, "examples")).filter((n) => /\.(json|toml)$/.test(n)).sort();

function validator() {
  const ajv = new Ajv2020.default({ allErrors: true, strict: false });
  return ajv.compile(JSON.parse(committed));
}

test("schema/spec.schema.json is what the spec definition generates (regenerate: gen-networkd schema > schema/spec.schema.json)", () => {
  assert.fixture(committed, schemaText());
});

test("gen-networkd schema prints the committed schema", () => {
  const cli = join(root, "dist/cli.js");
  assert.ok(existsSync(cli), "dist/cli.js is missing: run `npm run build` (npm test does)");
  const result = spawnSync(process.execPath, [cli, "schema"], { encoding: "utf8" });
  assert.is(result.status, 0, result.stderr);
  assert.fixture(result.stdout, committed);
});

test("every example validates against the committed schema", async () => {
  assert.ok(examples.some((n) => n.endsWith(".json")), "no JSON example found");
  const validate = validator();
  for (const name of examples) {
    const { document } = await loadSpec(join(root, "examples", name));
    const ok = validate(document);
    assert.ok(ok, `${name}: ${JSON.stringify(validate.errors)}`);
  }
});

test("the JSON examples point their $schema at the committed schema", () => {
  for (const name of examples.filter((n) => n.endsWith(".json"))) {
    const document = JSON.parse(readFileSync(join(root, "examples", name), "utf8")) as { $schema?: string };
    assert.is(document.$schema, "../schema/spec.schema.json", name);
  }
});

test("the schema rejects what the validator rejects: an unknown key and a wrong type", () => {
  const validate = validator();
  const seed = JSON.parse(readFileSync(join(root, "examples/seed.json"), "utf8"));
  assert.not.ok(validate({ ...seed, tunel: {} }), "unknown top-level key accepted");
  assert.not.ok(validate({ ...seed, split: { ...seed.split, table: "main" } }), "string table accepted");
});

test.run();
