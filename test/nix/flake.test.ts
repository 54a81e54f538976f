// flake.nix and the Nix files under nix/ cannot be built here (nothing can fetch
// nixpkgs), so the tests check what a bare evaluator can: they parse, and their
// top-level shapes are what Nix and NixOS expect.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { Nix, nixTest } from "./nix.js";

const test = suite("flake");
const root = new URL("../..", import.meta.url).pathname;
const nix = new Nix();
test.after(() => nix.dispose());

const nixFiles = ["flake.nix", ...readdirSync(join(root, "nix")).filter((n) => n.endsWith(".nix")).map((n) => `nix/${n}`)];
const at = (path: string) => JSON.stringify(join(root, path));

test("nix/ holds the package, the NixOS module and its four helpers", () => {
  assert.equal(nixFiles.slice(1).sort(), ["nix/files.nix", "nix/module.nix", "nix/package.nix", "nix/restart-inputs.nix", "nix/secrets.nix", "nix/services.nix"]);
});

for (const file of nixFiles) {
  nixTest(test, `${file} parses`, () => nix.parse(join(root, file)));
}

nixTest(test, "flake.nix: pinned nixpkgs input, outputs taking self and nixpkgs", () => {
  assert.equal(
    nix.evalJson(`let f = import ${at("flake.nix")}; in {
      attrs = builtins.attrNames f;
      url = f.inputs.nixpkgs.url;
      args = builtins.functionArgs f.outputs;
    }`),
    { args: { nixpkgs: false, self: false }, attrs: ["description", "inputs", "outputs"], url: "github:NixOS/nixpkgs/nixos-24.11" },
  );
});

nixTest(test, "nix/module.nix is a NixOS module function; nix/package.nix a callPackage function; nix/files.nix and nix/restart-inputs.nix take spec and prefix", () => {
  assert.equal(nix.evalJson(`builtins.functionArgs (import ${at("nix/files.nix")})`), { anchors: true, prefix: false, spec: false });
  assert.equal(nix.evalJson(`builtins.functionArgs (import ${at("nix/restart-inputs.nix")})`), { anchors: true, prefix: false, spec: false });
  assert.equal(nix.evalJson(`builtins.functionArgs (import ${at("nix/module.nix")})`), { config: false, lib: false, pkgs: false });
  assert.equal(nix.evalJson(`builtins.functionArgs (import ${at("nix/services.nix")})`), { anchors: true, spec: false, waitOnline: false });
  assert.equal(nix.evalJson(`builtins.functionArgs (import ${at("nix/package.nix")})`), {
    buildNpmPackage: false,
    importNpmLock: false,
    lib: false,
    nodejs_20: false,
  });
});

test.run();
