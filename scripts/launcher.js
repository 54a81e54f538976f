#!/usr/bin/env node
// gen-networkd's entry point (installed as dist/cli.js): runs the bundled CLI,
// dist/gen-networkd.cjs, with the V8 code cache made for it at build time.
//
// Compiling the bundle's ~0.8 MB and the functions a run needs is a good part of
// a run on a small spec; with the cache V8 reuses the build's bytecode instead.
// A cache that does not fit this node (another V8, other flags) is rejected by V8
// itself, one made from another bundle by the digest below, and the bundle is then
// compiled as usual: never a different behaviour.

import { createHash } from "node:crypto";
import Module, { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Script } from "node:vm";

const bundle = fileURLToPath(new URL("gen-networkd.cjs", import.meta.url));
const cacheFile = `${bundle}.cache`;

const source = readFileSync(bundle, "utf8");
// V8 checks a cache against the source's length only: the cache of another bundle of the same
// length (code moved, not added; the build records the new cache starting from the old one)
// would run with the wrong source positions, and functions compiled later would parse from the
// wrong offsets ("SyntaxError: Unexpected token"). So the cache starts with the sha256 of the
// bundle it was made from, and is used only with that bundle.
const digest = createHash("sha256").update(source).digest();
let cachedData;
try {
  const file = readFileSync(cacheFile);
  if (file.subarray(0, digest.length).equals(digest)) cachedData = file.subarray(digest.length);
} catch {
  // No cache (a build without one): compile as usual.
}
const script = new Script(Module.wrap(source), { filename: bundle, cachedData });
// The build runs the CLI once with this set, so the cache holds what a run compiles (scripts/bundle.mjs).
if (process.env.GEN_NETWORKD_WRITE_CODE_CACHE === "1") process.on("exit", () => writeFileSync(cacheFile, Buffer.concat([digest, script.createCachedData()])));
const module = { exports: {} };
script.runInThisContext()(module.exports, createRequire(bundle), module, bundle, dirname(bundle));
