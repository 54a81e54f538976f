# The gen-networkd CLI, built from this repository with nixpkgs' buildNpmPackage.
# npm dependencies come straight from package-lock.json (importNpmLock), so there
# is no dependency hash to maintain by hand.
{
  lib,
  buildNpmPackage,
  importNpmLock,
  nodejs_20,
}:

let
  package = lib.importJSON ../package.json;
in
buildNpmPackage {
  pname = package.name;
  inherit (package) version;

  # Only what the build and the tests read: a stray node_modules or out/ never enters the store.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package.json
      ../package-lock.json
      ../tsconfig.json
      ../scripts
      ../src
      ../templates
      # Read by the tests only.
      ../test
      ../examples
      ../schema
      ../bench
      ../nix
      ../flake.nix
    ];
  };

  nodejs = nodejs_20;
  npmDeps = importNpmLock {
    inherit package;
    packageLock = lib.importJSON ../package-lock.json;
  };
  npmConfigHook = importNpmLock.npmConfigHook;

  # `npm run build` (tsc, esbuild, the code cache) is buildNpmPackage's default build; the install keeps
  # package.json's "files" (dist, templates) and links bin/gen-networkd.

  # The flake's checks turn this on. Tests that need root (the namespace lab) or
  # nix-instantiate report themselves as skipped inside the build sandbox.
  doCheck = false;
  checkPhase = ''
    runHook preCheck
    node test/run.mjs
    runHook postCheck
  '';

  meta = {
    inherit (package) description;
    license = lib.licenses.mit;
    mainProgram = "gen-networkd";
    platforms = lib.platforms.linux;
  };
}
