// Running the real Nix evaluator (nix-instantiate) from tests.
//
// Debian's nix-bin runs without a daemon as root once it is pointed at a state
// directory of its own: NIX_STATE_DIR and HOME in a temp dir, and an empty
// build-users-group (root otherwise expects a "nixbld" group and warns). The
// store directory is a temp dir too, so store paths in a result are easy to
// recognise. NIX_PATH is empty: nothing here may depend on channels or <nixpkgs>.

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Test } from "uvu";

export class Nix {
  readonly root: string;
  readonly storeDir: string;
  private readonly env: NodeJS.ProcessEnv;

  constructor() {
    this.root = mkdtempSync(join(tmpdir(), "gen-networkd-nix-"));
    this.storeDir = join(this.root, "store");
    this.env = {
      PATH: process.env.PATH,
      HOME: this.root,
      NIX_STATE_DIR: join(this.root, "state"),
      NIX_STORE_DIR: this.storeDir,
      NIX_LOG_DIR: join(this.root, "log"),
      NIX_CONFIG: "build-users-group =",
      NIX_PATH: "",
    };
  }

  /** Writes a file under this evaluator's temp dir and returns its path. */
  file(name: string, text: string): string {
    const path = join(this.root, name);
    writeFileSync(path, text);
    return path;
  }

  private run(args: string[]): string {
    const result = spawnSync("nix-instantiate", args, { env: this.env, cwd: this.root, encoding: "utf8", maxBuffer: 256 << 20 });
    if (result.error) throw result.error;
    if (result.status !== 0) throw new Error(`nix-instantiate ${args.join(" ")} failed:\n${result.stderr}`);
    return result.stdout;
  }

  /** Parses a file; throws with Nix's message when it is not valid Nix. */
  parse(path: string): void {
    this.run(["--parse", path]);
  }

  /** Evaluates an expression (relative imports resolve against the temp dir) strictly, as JSON. */
  evalJson(expression: string): unknown {
    return JSON.parse(this.run(["--eval", "--strict", "--json", "-E", expression]));
  }

  /**
   * Strings in an evaluated value that name a store path. A Nix path literal (say a
   * key file written as /etc/wg0.key instead of "/etc/wg0.key") turns into one: Nix
   * copies the file into the world-readable store when it converts the value to JSON.
   */
  storePathsIn(value: unknown): string[] {
    if (typeof value === "string") return value.startsWith(`${this.storeDir}/`) ? [value] : [];
    if (Array.isArray(value)) return value.flatMap((v) => this.storePathsIn(v));
    if (typeof value === "object" && value !== null) return Object.values(value).flatMap((v) => this.storePathsIn(v));
    return [];
  }

  dispose(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** Why nix-instantiate cannot be used here, or undefined when it can. */
function nixMissingReason(): string | undefined {
  const probe = spawnSync("nix-instantiate", ["--version"], { encoding: "utf8" });
  if (probe.error) return `nix-instantiate not found (${(probe.error as NodeJS.ErrnoException).code}); install Debian's nix-bin`;
  if (probe.status !== 0) return `nix-instantiate --version failed: ${probe.stderr.trim()}`;
  return undefined;
}

const missing = nixMissingReason();

/**
 * Registers a test that needs nix-instantiate. Without it the test is skipped and
 * the reason printed, unless GEN_NETWORKD_LAB=required (CI), where it fails.
 */
export function nixTest(suite: Test, name: string, body: () => void | Promise<void>): void {
  if (missing && process.env.GEN_NETWORKD_LAB !== "required") {
    console.log(`skipped "${name}": ${missing}`);
    suite.skip(name, body);
    return;
  }
  suite(name, () => {
    if (missing) throw new Error(`${missing} (GEN_NETWORKD_LAB=required)`);
    return body();
  });
}
