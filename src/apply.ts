// `gen-networkd apply`: the diff, a confirmation, the atomic write (write.ts),
// `networkctl reload`, the tunnel recreated when its .netdev changed, and doctor's
// verdict on the result, in one step.

import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline/promises";
import { CommandError } from "./command-error.js";
import { doctorChecks, printChecks, readLiveHost, type DoctorOptions } from "./doctor.js";
import { generate } from "./generate.js";
import { localIp } from "./host-state.js";
import { plannedRouting } from "./plan-routing.js";
import { columns, painter, type Painter } from "./terminal.js";
import { parseUnitFile } from "./unitfile.js";
import { applyChanges, diffAgainstDisk, hasDrift, pathOf, unifiedDiff, type Changes } from "./write.js";

export interface ApplyOptions extends DoctorOptions {
  readonly yes?: boolean;
  readonly force?: boolean;
}

/** How long apply waits for networkd to configure the planned links before it asks doctor anyway. */
const CONFIGURE_TIMEOUT_MS = 30_000;

function networkctl(args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile("networkctl", args, { encoding: "utf8", timeout: 60_000 }, (error, _stdout, stderr) => {
      if (!error) resolve();
      else reject(new CommandError(`apply: networkctl ${args.join(" ")} failed: ${(stderr || error.message).trim().split("\n")[0]}; is systemd-networkd running (systemctl status systemd-networkd)?`, 1));
    }),
  );
}

/** The link a .netdev text creates ([NetDev] Name=), if any. */
function netdevName(text: string): string | undefined {
  try {
    return parseUnitFile(text).find((s) => s.name === "NetDev")?.entries.find((e) => e.key === "Name")?.value as string | undefined;
  } catch {
    return undefined;
  }
}

/**
 * Links to delete before the reload: networkd (up to 256 at least) does not apply a
 * changed .netdev to a link that exists, and never removes a link whose .netdev is gone.
 */
export function linksToRecreate(changes: Changes): string[] {
  // Comments do not count: the ownership header changes with every edit of the spec.
  const settings = (text: string) => {
    try {
      return JSON.stringify(parseUnitFile(text).map((s) => [s.name, s.entries]));
    } catch {
      return text;
    }
  };
  const changed = [...changes.update, ...changes.foreign]
    .filter((f) => f.fileName.endsWith(".netdev") && settings(f.old) !== settings(f.content))
    .map((f) => netdevName(f.old));
  const removed = changes.stale.filter((f) => f.path.endsWith(".netdev")).map((f) => netdevName(f.old));
  return [...new Set([...changed, ...removed].filter((n): n is string => n !== undefined))].sort();
}

async function linkExists(name: string): Promise<boolean> {
  try {
    await localIp(["link", "show", "dev", name]);
    return true;
  } catch {
    return false;
  }
}

/** networkd's own state of a link (its state file), e.g. "configured", or undefined. */
async function networkdState(name: string): Promise<string | undefined> {
  try {
    const [link] = JSON.parse(await localIp(["-j", "link", "show", "dev", name])) as { ifindex: number }[];
    const text = await readFile(`/run/systemd/netif/links/${link!.ifindex}`, "utf8");
    return /^ADMIN_STATE=(.*)$/m.exec(text)?.[1];
  } catch {
    return undefined;
  }
}

/** Polls networkd's state of LINKS until each is configured (or failed), or the timeout passes. */
async function waitConfigured(links: readonly string[], timeoutMs: number): Promise<Map<string, string>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = new Map(await Promise.all(links.map(async (l) => [l, (await networkdState(l)) ?? "absent"] as const)));
    if ([...states.values()].every((s) => s === "configured" || s === "failed") || Date.now() > deadline) return states;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function paintDiff(paint: Painter, diff: string): string {
  return diff
    .split("\n")
    .map((line) => (/^\+(?!\+\+)/.test(line) ? paint("green", line) : /^-(?!--)/.test(line) ? paint("red", line) : line))
    .join("\n");
}

async function confirmed(question: string): Promise<boolean> {
  const prompt = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await prompt.question(question)).trim());
  } finally {
    prompt.close();
  }
}

export async function runApply(specPath: string, options: ApplyOptions): Promise<number> {
  const out = process.stdout;
  const paint = painter(out);
  const { plan, files } = await generate(specPath, { outputDir: options.output, confDir: options.confDir, prefix: options.prefix });
  for (const note of plan.notes) process.stderr.write(`gen-networkd: ${note}\n`);
  const changes = await diffAgainstDisk(files, plan.identity);

  if (hasDrift(changes)) {
    out.write(paintDiff(paint, unifiedDiff(changes)));
    if (!options.yes) {
      if (!process.stdin.isTTY || !out.isTTY) {
        throw new CommandError(`apply: no terminal to confirm on, so nothing was written; review the diff above and pass --yes to apply it`, 3);
      }
      if (!(await confirmed(`Write these changes to ${options.output} and reload networkd? [y/N] `))) {
        out.write("nothing written\n");
        return 1;
      }
    }
    await applyChanges(changes, { force: options.force ?? false });
    const rows = [
      ...changes.create.map((f) => [pathOf(f), "created"]),
      ...changes.update.map((f) => [pathOf(f), "updated"]),
      ...changes.foreign.map((f) => [pathOf(f), "overwritten (--force)"]),
      ...changes.stale.map((f) => [f.path, "removed (no longer in the spec)"]),
    ];
    out.write(`${columns(rows).join("\n")}\n`);

    for (const link of linksToRecreate(changes)) {
      if (!(await linkExists(link))) continue;
      out.write(`recreating ${link}: its .netdev changed and networkd applies a .netdev only when it creates the link; ${link} drops for a moment\n`);
      await networkctl(["delete", link]);
    }
    out.write("networkctl reload\n");
    await networkctl(["reload"]);
    const confChanged = [...changes.create, ...changes.update, ...changes.foreign].some((f) => f.fileName.endsWith(".conf")) || changes.stale.some((f) => f.path.endsWith(".conf"));
    if (confChanged) {
      out.write("note: the networkd.conf drop-in changed; networkd reads it only when it starts (until then it may remove foreign rules such as tailscale's): systemctl restart systemd-networkd\n");
    }
    const links = plannedRouting(plan).links.map((l) => l.name);
    const states = await waitConfigured(links, CONFIGURE_TIMEOUT_MS);
    out.write(`${[...states].map(([link, state]) => `${link}: ${state}`).join(", ")}\n`);
  } else {
    out.write(`${options.output} already holds what ${specPath} generates; nothing to write or reload\n`);
  }

  out.write(`${paint("bold", "doctor:")}\n`);
  return printChecks(await doctorChecks(specPath, options, await readLiveHost()), false, out);
}
