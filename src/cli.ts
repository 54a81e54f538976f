// gen-networkd's command line: flags in, files (or a diff) out, exit codes documented.
//
//   0 ok · 1 invalid spec or --check drift · 2 usage · 3 refused write · 4 file-system error

import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { readFileSync } from "node:fs";
import { conflictsWithOthers } from "./conflicts.js";
import { InvalidSpecError, OUTPUT_FORMATS, generate, type OutputFormat } from "./generate.js";
import { CommandError as OperateError } from "./command-error.js";
import type { ApplyOptions } from "./apply.js";
import type { DoctorOptions } from "./doctor.js";
import type { ExplainOptions } from "./explain.js";
import { keyFileWarnings } from "./keyfile.js";
import { findShadowing, shadowingWarning } from "./networkd-files.js";
import { SpecSyntaxError } from "./load.js";
import { schemaText } from "./schema.js";
import { DEFAULT_STATE_DIR } from "./try-state.js";
import { FileSystemError, RefusedWriteError, applyChanges, diffAgainstDisk, hasDrift, pathOf, unifiedDiff, withDirectoryLock } from "./write.js";

// The default command (generate) must start fast on million-line lists: the other commands,
// and what only they use, are imported when they run.

export const EXIT = { ok: 0, invalid: 1, usage: 2, refused: 3, fileSystem: 4 } as const;

const VERSION = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

interface GenerateFlags {
  output: string;
  confDir?: string;
  prefix: string;
  format: OutputFormat;
  check?: boolean;
  stdout?: boolean;
  force?: boolean;
  wait: number;
}

function seconds(value: string): number {
  if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError("expected whole seconds, e.g. 30");
  return Number(value);
}

function directory(value: string): string {
  if (value === "") throw new InvalidArgumentError("the directory must not be empty");
  return value;
}

interface ApplyFlags extends Omit<ApplyOptions, "output" | "try"> {
  output?: string;
  try?: number | true;
  confirm?: boolean;
  revert?: boolean;
  watchTry?: string;
  stateDir: string;
}

const DEFAULT_TRY_SECONDS = 120;

function trySeconds(value: string): number {
  if (!/^[0-9]+$/.test(value) || Number(value) < 1 || Number(value) > 86_400) throw new InvalidArgumentError("expected whole seconds from 1 to 86400, e.g. 120");
  return Number(value);
}

function filePrefix(value: string): string {
  if (!/^[0-9]{2}$/.test(value)) throw new InvalidArgumentError("expected two digits, e.g. 50");
  return value;
}

async function runGenerate(specPath: string, flags: GenerateFlags): Promise<number> {
  const { spec, plan, files, dirs } = await generate(specPath, { outputDir: flags.output, confDir: flags.confDir, prefix: flags.prefix, format: flags.format });
  for (const note of plan.notes) process.stderr.write(`gen-networkd: ${note}\n`);
  // A NixOS module is installed by a rebuild, into the files that generation makes: this host's are not its company.
  if (flags.format !== "nix") for (const found of await findShadowing(plan, flags.output)) process.stderr.write(`gen-networkd: ${shadowingWarning(found)}\n`);
  const keyFiles = [spec.tunnel.private_key_file, ...(spec.tunnel.peers ?? []).map((p) => p.preshared_key_file)];
  for (const keyFile of keyFiles) {
    if (keyFile !== undefined) for (const warning of await keyFileWarnings(keyFile, specPath)) process.stderr.write(`warning: ${warning.text}\n`);
  }

  if (flags.stdout) {
    process.stdout.write(files.map((f) => `==> ${pathOf(f)} <==\n${f.content}`).join("\n"));
    return EXIT.ok;
  }
  const diffOptions = { alsoPrune: dirs, record: { dir: flags.output, spec: specPath } };
  if (flags.check) {
    const changes = await diffAgainstDisk(files, plan.identity, diffOptions);
    if (!hasDrift(changes)) return EXIT.ok;
    process.stdout.write(unifiedDiff(changes));
    process.stderr.write(`gen-networkd: ${flags.output} does not hold what ${specPath} generates; run without --check to update it\n`);
    return EXIT.invalid;
  }
  // Read and written under the directories' lock: a concurrent run (another spec sharing them) goes before or after.
  const changes = await withDirectoryLock(
    [...files.map((f) => f.dir), ...dirs],
    async () => {
      const changes = await diffAgainstDisk(files, plan.identity, diffOptions);
      const conflicts = await conflictsWithOthers(specPath, files, plan.identity, changes.stale.map((s) => s.path));
      if (conflicts.length > 0) throw new RefusedWriteError(conflicts.join("\n"));
      await applyChanges(changes, { force: flags.force ?? false });
      return changes;
    },
    { waitMs: flags.wait * 1000, onWait: (message) => process.stderr.write(`gen-networkd: ${message}\n`) },
  );
  for (const note of changes.notes) process.stderr.write(`gen-networkd: ${note}\n`);
  const rows = [
    ...changes.create.map((f) => [pathOf(f), "created"]),
    ...changes.update.map((f) => [pathOf(f), "updated"]),
    ...changes.foreign.map((f) => [pathOf(f), "overwritten (--force)"]),
    ...changes.unchanged.map((f) => [pathOf(f), "unchanged"]),
    ...changes.stale.map((f) => [f.path, "removed (no longer in the spec)"]),
    ...changes.leftovers.map((path) => [path, "removed (left by an interrupted run)"]),
  ];
  const width = Math.max(...rows.map(([path]) => path!.length));
  for (const [path, what] of rows) process.stdout.write(`${path!.padEnd(width)}  ${what}\n`);
  return EXIT.ok;
}

export function buildProgram(): Command {
  const program = new Command()
    .name("gen-networkd")
    .description("Turn one split-tunnel spec into systemd-networkd files (or a NixOS module).")
    .version(VERSION)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`gen-networkd: ${text.replace(/^error: /, "")}`) })
    .addHelpText(
      "after",
      `
Examples:
  gen-networkd spec.toml -o /etc/systemd/network && networkctl reload
  gen-networkd spec.toml --stdout        # review what would be written
  gen-networkd generate --help           # every option of the default command`,
    );

  program
    .command("generate", { isDefault: true })
    .description("write the .netdev/.network files for SPEC (the default command)")
    .argument("<spec>", "split-tunnel spec, .toml or .json")
    .option("-o, --output <dir>", "directory to write into (e.g. /etc/systemd/network)", directory, "out")
    .option("--conf-dir <dir>", "directory for the networkd.conf drop-in (default: networkd.conf.d beside DIR when DIR is .../network, else inside DIR)", directory)
    .option("--prefix <NN>", "two-digit file name prefix that orders our files", filePrefix, "50")
    .addOption(
      new Option("--format <format>", "networkd: .netdev/.network files; nix: one NixOS module DIR/<interface>.nix; all: both")
        .choices(OUTPUT_FORMATS)
        .default("networkd"),
    )
    .addOption(new Option("--check", "write nothing; exit 1 with a diff when DIR differs from what SPEC generates").conflicts("stdout"))
    .option("--stdout", "print what would be written (each file under a header line); write nothing")
    .option("--force", "overwrite files of ours' names that gen-networkd did not write")
    .option("--wait <seconds>", "how long to wait for another run writing DIR before refusing (exit 3)", seconds, 30)
    .addHelpText(
      "after",
      `
Examples:
  gen-networkd spec.toml -o /etc/systemd/network && networkctl reload
  gen-networkd spec.toml --stdout                 # review before writing
  gen-networkd spec.toml -o /etc/systemd/network --check   # in CI: did I regenerate?
  gen-networkd spec.toml --format nix -o /etc/nixos/gen-networkd   # NixOS: a module to import

Exit codes: 0 ok, 1 invalid spec or --check drift, 2 usage, 3 refused write, 4 file-system error.`,
    )
    .action(async (specPath: string, flags: GenerateFlags) => {
      process.exitCode = await runGenerate(specPath, flags);
    });

  program
    .command("explain")
    .description("show what Linux policy routing does with flows once SPEC is applied (simulated: no packet is sent)")
    .argument("<spec>", "split-tunnel spec, .toml or .json")
    .argument("[flow...]", "[PROTO:]ADDR[:PORT] (IPv6 with a port in brackets), optionally followed by uid=N, mark=N, sport=N, from=ADDR, forwarded or iif=NAME; or dns:NAME: where systemd-resolved sends a lookup for NAME, and the path of its queries")
    .option("--json", "one JSON object per flow (dst, proto, verdict, interface, table, rule_priority, steps, assumes)")
    .option("--rules <file>", "the host's rules: `{ ip -4 -N -j rule; ip -6 -N -j rule; } > FILE` (with --routes)")
    .option("--routes <file>", "the host's routes: `ip -N -j route show table all > FILE` (with --rules)")
    .option("--offline", "ignore this machine's tables; assume a host whose main table holds only a default route")
    .addHelpText(
      "after",
      `
Examples:
  gen-networkd explain spec.toml                         # representative destinations and protocols
  gen-networkd explain spec.toml tcp:203.0.113.9:443 udp:[2001:db8::1]:53 uid=1000
  gen-networkd explain spec.toml 192.168.1.10 --rules rules.json --routes routes.json --json
  gen-networkd explain spec.toml dns:wiki.corp.example   # which resolvers get the lookup, through which path

Without --rules/--routes it reads this machine's tables (ip -j rule, ip -j route show table all).`,
    )
    .action(async (specPath: string, flows: string[], flags: ExplainOptions) => {
      const { runExplain } = await import("./explain.js");
      process.exitCode = await runExplain(specPath, flows, flags);
    });

  program
    .command("doctor")
    .description("check this host against SPEC: files, key, links, the .network networkd applied, rules, tables, shadowing, tailscale, rp_filter, handshakes")
    .argument("<spec>", "split-tunnel spec, .toml or .json")
    .option("-o, --output <dir>", "directory networkd reads the generated files from", directory, "/etc/systemd/network")
    .option("--conf-dir <dir>", "directory of the networkd.conf drop-in, if not the default", directory)
    .option("--prefix <NN>", "two-digit file name prefix the files were generated with", filePrefix, "50")
    .option("--json", "the checks as JSON ({ ok, checks: [{ id, status, summary, details, fix }] })")
    .addHelpText(
      "after",
      `
Example:
  sudo gen-networkd doctor /etc/gen-networkd/wg0.toml      # each failed check prints one fix

Exit codes: 0 every check passed (or was skipped), 1 a check failed.`,
    )
    .action(async (specPath: string, flags: DoctorOptions) => {
      const { runDoctor } = await import("./doctor.js");
      process.exitCode = await runDoctor(specPath, flags);
    });

  program
    .command("apply")
    .description("write SPEC's files into DIR after showing the diff, reload networkd (recreating a changed tunnel), then run doctor; with --try, revert unless confirmed")
    .argument("[spec]", "split-tunnel spec, .toml or .json (not with --confirm or --revert)")
    .option("-o, --output <dir>", "directory networkd reads, e.g. /etc/systemd/network (required with SPEC)", directory)
    .option("--conf-dir <dir>", "directory for the networkd.conf drop-in (default as for generate)", directory)
    .option("--prefix <NN>", "two-digit file name prefix that orders our files", filePrefix, "50")
    .option("-y, --yes", "apply without asking (needed when there is no terminal)")
    .option("--force", "overwrite files of ours' names that gen-networkd did not write")
    .option("--try [seconds]", "apply, then put the previous files back after SECONDS (default 120) unless confirmed, even if this session dies", trySeconds)
    .option("--confirm", "keep the configuration of the pending try (from any shell)")
    .option("--revert", "revert the pending try now (from any shell)")
    .option("--any-dir", "apply to a directory networkd does not read (it is refused otherwise)")
    .option("--state-dir <dir>", "where a try keeps the previous files until it is decided", directory, DEFAULT_STATE_DIR)
    .option("--wait <seconds>", "how long to wait for another run writing DIR before refusing (exit 3)", seconds, 30)
    .addOption(new Option("--watch-try <id>", "internal: the detached process that reverts a try").hideHelp())
    .addHelpText(
      "after",
      `
Examples:
  sudo gen-networkd apply /etc/gen-networkd/wg0.toml -o /etc/systemd/network
  sudo gen-networkd apply wg0.toml -o /etc/systemd/network --yes     # from a script
  sudo gen-networkd apply wg0.toml -o /etc/systemd/network --try     # over SSH: reverts in 120 s unless you press Enter
  sudo gen-networkd apply --confirm                                   # keep a pending try, from another shell

A changed .netdev: networkd 257 and later apply it on reload; up to 256 apply recreates its link (networkctl delete,
then reload), and the tunnel drops for a moment.
Exit codes: 0 applied (and kept) and doctor passed, 1 doctor found a problem, you declined, or the try was reverted,
3 refused (no terminal without --yes, a file not ours, a directory networkd does not read, networkd not running,
a try pending or another apply running).`,
    )
    .action(async (specPath: string | undefined, flags: ApplyFlags) => {
      const apply = await import("./apply.js");
      const decisions = [flags.confirm && "--confirm", flags.revert && "--revert", flags.watchTry !== undefined && "--watch-try"].filter(Boolean);
      if (decisions.length > 1) throw new OperateError(`apply: ${decisions.join(" and ")} cannot be combined`, 2);
      if (decisions.length === 1) {
        if (specPath !== undefined || flags.try !== undefined) throw new OperateError(`apply: ${decisions[0]} decides the pending try; it takes no SPEC and no --try`, 2);
        process.exitCode =
          flags.watchTry !== undefined ? await apply.runTryWatcher(flags.stateDir, flags.watchTry) : await apply.runDecide(flags.stateDir, flags.confirm ? "confirm" : "revert");
        return;
      }
      if (specPath === undefined) throw new OperateError("apply: missing SPEC (or --confirm / --revert to decide a pending try)", 2);
      if (flags.output === undefined) throw new OperateError("apply: -o DIR is required: the directory networkd reads, e.g. -o /etc/systemd/network", 2);
      const seconds = flags.try === undefined ? undefined : flags.try === true ? DEFAULT_TRY_SECONDS : flags.try;
      process.exitCode = await apply.runApply(specPath, { ...flags, output: flags.output, try: seconds });
    });

  program
    .command("schema")
    .description("print the JSON Schema of the spec format (for editors and CI)")
    .addHelpText(
      "after",
      `
Example:
  gen-networkd schema > spec.schema.json    # then "$schema": "./spec.schema.json" in a JSON spec`,
    )
    .action(() => {
      process.stdout.write(schemaText());
    });
  return program;
}

/** Exit code for an error: user mistakes get one line each, never a stack trace. */
function report(error: unknown): number {
  if (error instanceof CommanderError) {
    return error.exitCode === 0 || error.code === "commander.helpDisplayed" || error.code === "commander.version" ? EXIT.ok : EXIT.usage;
  }
  if (error instanceof InvalidSpecError || error instanceof SpecSyntaxError) {
    process.stderr.write(`${error.message}\n`);
    return EXIT.invalid;
  }
  if (error instanceof OperateError) {
    process.stderr.write(`gen-networkd: ${error.message}\n`);
    return error.exitCode;
  }
  if (error instanceof RefusedWriteError) {
    process.stderr.write(`${error.message}\n`);
    return EXIT.refused;
  }
  if (error instanceof FileSystemError) {
    process.stderr.write(`${error.message}\n`);
    return EXIT.fileSystem;
  }
  throw error;
}

/** Stops caring about a reader that went away (`| head`): the run goes on and its exit code stands, as with other CLIs. */
function ignoreClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE" && error.code !== "ERR_STREAM_DESTROYED") throw error;
  });
}

export async function main(argv: readonly string[]): Promise<void> {
  ignoreClosedPipe(process.stdout);
  ignoreClosedPipe(process.stderr);
  if (argv.length <= 2) {
    // Nothing asked: the help says what can be, rather than an error about a missing spec.
    process.stderr.write(buildProgram().helpInformation());
    process.exitCode = EXIT.usage;
    return;
  }
  try {
    await buildProgram().parseAsync(argv as string[]);
  } catch (error) {
    process.exitCode = report(error);
  }
}

// main reports every error itself (exit code and message), so nothing is left to await.
void main(process.argv);
