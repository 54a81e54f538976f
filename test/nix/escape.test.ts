// Hostile strings cannot break out of the Nix the renderer writes: every string
// value, attribute name and comment comes back from the real Nix evaluator
// exactly as it went in. Strings are batched, many per nix-instantiate call.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import fc from "fast-check";
import { entry, section, type Plan } from "../../src/model.js";
import { AddressSet } from "../../src/prefix.js";
import { NixMappingError, nixAttrName, nixString, renderNix } from "../../src/render-nix.js";
import { Nix, nixTest } from "./nix.js";
import { LOOSE_BY_DEFAULT } from "./nixos-render.js";
import { loadTemplates } from "../../src/templates.js";

await loadTemplates();

const test = suite("nix-escape");
const nix = new Nix();
test.after(() => nix.dispose());

// Pieces that mean something to the Nix lexer, mixed with arbitrary Unicode.
const nixSyntax = fc.constantFrom("$", "${", "$${", "{", "}", "\\", '"', "'", "''", "''$", "\n", "\r", "\t", "#", "/*", "*/", ";", "=", " ", "x");
const hostile = fc
  .oneof(
    fc.array(nixSyntax, { maxLength: 12 }).map((parts) => parts.join("")),
    fc.string({ unit: "binary", maxLength: 24 }),
    fc.tuple(fc.string({ unit: "binary", maxLength: 8 }), nixSyntax, fc.string({ unit: "binary", maxLength: 8 })).map((t) => t.join("")),
  )
  .filter((s) => !s.includes("\0"));

/** One evaluation per run, with a batch of strings in it. */
const batch = fc.array(hostile, { minLength: 20, maxLength: 60 });
const RUNS = 12;

test("NUL cannot be held by a Nix string and is refused", () => {
  assert.throws(() => nixString("a\0b"), (err: Error) => err instanceof NixMappingError && /NUL/.test(err.message));
});

test("names Nix accepts bare stay bare; the rest are quoted", () => {
  assert.is(nixAttrName("PrivateKeyFile"), "PrivateKeyFile");
  assert.is(nixAttrName("50-wg0"), '"50-wg0"');
  assert.is(nixAttrName("in"), '"in"');
  assert.is(nixAttrName("a.b"), '"a.b"');
});

nixTest(test, "string literals evaluate back to the exact string", () => {
  fc.assert(
    fc.property(batch, (strings) => {
      nix.file("strings.nix", `[\n${strings.map(nixString).join("\n")}\n]\n`);
      assert.equal(nix.evalJson("import ./strings.nix"), strings);
    }),
    { numRuns: RUNS, includeErrorInReport: true },
  );
});

nixTest(test, "attribute names evaluate back to the exact name", () => {
  fc.assert(
    fc.property(batch, (names) => {
      nix.file("names.nix", `[\n${names.map((n) => `{ ${nixAttrName(n)} = 0; }`).join("\n")}\n]\n`);
      assert.equal(
        nix.evalJson("map builtins.attrNames (import ./names.nix)"),
        names.map((n) => [n]),
      );
    }),
    { numRuns: RUNS, includeErrorInReport: true },
  );
});

nixTest(test, "through the renderer: hostile values, names and comments leave the module's meaning intact", () => {
  fc.assert(
    fc.property(batch, hostile, (strings, fileStem) => {
      const plan: Plan = {
        identity: "wg0",
        specHash: "0".repeat(64),
        notes: [],
        routes: strings.length,
        tunnelled: AddressSet.EMPTY,
        units: [
          {
            kind: "network",
            fileName: `${fileStem}.network`,
            comment: strings.slice(0, 3),
            sections: [
              section("Match", [entry("Name", strings[0]!)], strings.slice(3, 6)),
              section("Network", strings.map((s) => entry("Description", s)), strings.slice(6, 9)),
              ...strings.map((s) => section("Route", [entry("Destination", s)], [s])),
            ],
          },
        ],
      };
      nix.file("hostile.nix", renderNix(plan, strings));
      const value = nix.evalJson("(import ./hostile.nix) {}");
      const description = strings.length === 1 ? strings[0] : strings;
      assert.equal(value, {
        networking: { firewall: { checkReversePath: LOOSE_BY_DEFAULT } },
        systemd: {
          network: {
            enable: true,
            networks: {
              [fileStem]: {
                matchConfig: { Name: strings[0] },
                networkConfig: { Description: description },
                routes: strings.map((s) => ({ Destination: s })),
              },
            },
          },
        },
      });
    }),
    { numRuns: RUNS, includeErrorInReport: true },
  );
});

test.run();
