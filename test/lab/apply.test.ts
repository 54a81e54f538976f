// apply end to end in the lab host: the real networkd, networkctl over the host's
// private D-Bus, and doctor at the end. The seed spec is applied first (by the
// lab), then apply is run inside the host as a user would:
//   - nothing changed: nothing written, doctor's verdict;
//   - no terminal, no --yes: the diff and a refusal, nothing written;
//   - a .network change (one more exclusion): written, `networkctl reload`, the
//     kernel holds the new throw, no tunnel recreated, doctor passes;
//   - a .netdev change (another listen port and keepalive): apply asks networkctl
//     --version and does what that networkd needs. Up to 256 it recreates wg0
//     (`networkctl delete wg0` + reload); since 257 the reload alone updates the
//     existing wg0. networkd cannot configure a WireGuard device in this kernel, so
//     the lab's wireguard-go stands in for that creation or update, from the new
//     .netdev; networkd configures the link, traffic resumes and doctor passes;
//   - the directory guard, then `apply --try` (see the section below): reverted after
//     its process is killed or its terminal hangs up, kept when confirmed, refused
//     while another try is pending or another run holds the directory's lock, and
//     `apply --revert` for a try whose watcher is gone; networkd stopped: refused.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { lstat, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import TOML from "@iarna/toml";
import * as assert from "uvu/assert";
import { labSuite } from "./harness.js";
import { CLI, inHost, ROOT, SplitCase } from "./case.js";
import { readSpec } from "./expect.js";
import { ADDR } from "./lab.js";
import { poll, Proc } from "./proc.js";
import type { KernelState } from "./state.js";
import { RECORD_NAME, withDirectoryLock } from "../../src/write.js";

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* gone */
  }
}

const steps: string[] = [];

async function setUp(): Promise<SplitCase> {
  const raw = await readSpec(join(ROOT, "examples/seed.toml"));
  return SplitCase.applied("apply", raw);
}

/** Where tries keep their backups: the lab's own directory, not the machine's /var/lib. */
const stateDir = (c: SplitCase) => join(c.lab.work, "state");

/**
 * `gen-networkd apply` as run inside the host, with the directories H's networkd reads
 * (/run/systemd/network is the generated directory there, /etc/systemd/networkd.conf.d its
 * drop-in directory).
 */
const applyArgv = (c: SplitCase, extra: string[]) => [
  process.execPath, CLI, "apply", c.specPath, "-o", "/run/systemd/network", "--conf-dir", "/etc/systemd/networkd.conf.d", "--state-dir", stateDir(c), ...extra,
];

/** Runs `gen-networkd apply` inside the host; its exit code and output. */
const apply = (c: SplitCase, extra: string[] = ["--yes"]) => inHost(c, applyArgv(c, extra));

async function editSpec(c: SplitCase, edit: (spec: Record<string, any>) => void): Promise<void> {
  const spec = TOML.parse(await readFile(c.specPath, "utf8")) as Record<string, any>;
  edit(spec);
  await writeFile(c.specPath, TOML.stringify(spec as TOML.JsonMap));
}

const t = labSuite("lab: apply end to end", setUp, async (c) => {
  if (steps.length) console.log(`apply in the lab (networkd ${networkdVersion}):\n  ${steps.join("\n  ")}`);
  await sshServer?.stop();
  // A watcher left by a failed test runs in H's namespaces, outside the lab's process list.
  for (const name of await readdir(stateDir(c)).catch(() => [] as string[])) {
    const pid = await readFile(join(stateDir(c), name, "watcher.pid"), "utf8").catch(() => undefined);
    if (pid) killQuietly(Number(pid.split(" ")[0]));
  }
  await c.destroy();
});

t.test("nothing changed: nothing written or reloaded, doctor passes", async (c) => {
  const { code, stdout } = await apply(c);
  assert.is(code, 0, stdout);
  assert.match(stdout, /already holds what .* generates; nothing to write or reload/);
  assert.match(stdout, /^all \d+ checks passed$/m);
  steps.push("unchanged: nothing written, doctor passed");
});

t.test("no terminal and no --yes: the diff, a refusal (exit 3), nothing written", async (c) => {
  await editSpec(c, (spec) => spec.split.exclude.push("198.18.0.0/15"));
  const before = await readFile(join(c.lab.genDir, "50-wg0-split.network"), "utf8");
  const { code, stdout, stderr } = await apply(c, []);
  assert.is(code, 3, stderr);
  assert.match(stdout, /^\+Destination=198\.18\.0\.0\/15$/m);
  assert.match(stderr, /apply: no terminal to confirm on, so nothing was written/);
  assert.is(await readFile(join(c.lab.genDir, "50-wg0-split.network"), "utf8"), before);
  steps.push("no terminal: refused with exit 3, nothing written");
});

t.test("a .network change: written, networkctl reload, the kernel holds it, tunnel kept, doctor passes", async (c) => {
  const wg0Before = JSON.parse(await c.lab.ip("H", ["-j", "link", "show", "wg0"]))[0].ifindex;
  const { code, stdout } = await apply(c);
  assert.is(code, 0, stdout);
  assert.match(stdout, /50-wg0-split\.network +updated/);
  assert.not.match(stdout, /recreating/);
  assert.match(stdout, /^networkctl reload$/m);
  assert.match(stdout, /^all \d+ checks passed$/m);
  const throws = (await c.lab.routes("10086", "ipv4")).map((r) => `${r.type} ${r.dst}`);
  assert.ok(throws.includes("throw 198.18.0.0/15"), `table 10086: ${throws.join(", ")}`);
  assert.is(JSON.parse(await c.lab.ip("H", ["-j", "link", "show", "wg0"]))[0].ifindex, wg0Before, "wg0 was not recreated");
  steps.push("exclusion added: written, reloaded, throw 198.18.0.0/15 in table 10086, wg0 kept, doctor passed");
});

t.test("a .netdev change (listen port, peer keepalive): applied as the running networkd needs, traffic resumes, doctor passes", async (c) => {
  const { version } = c.lab.systemd;
  await editSpec(c, (spec) => {
    spec.tunnel.listen_port = 51999;
    spec.tunnel.peers[0].persistent_keepalive = 15;
  });
  const wg0Before = JSON.parse(await c.lab.ip("H", ["-j", "link", "show", "wg0"]))[0].ifindex;
  const netdevPath = join(c.lab.genDir, "50-wg0.netdev");
  const running = apply(c);
  if (version >= 257) {
    // Stand in for networkd updating the existing device from the new .netdev on reload.
    await poll("apply to write the new .netdev", async () => ((await readFile(netdevPath, "utf8")).includes("ListenPort=51999") ? true : undefined), { timeoutMs: 30_000 });
    await c.lab.updateHostWireguard((await c.wireguardNetdev())!);
  } else {
    // Stand in for networkd creating the device from the new .netdev, once apply has deleted it.
    await poll("apply to delete wg0", async () => ((await c.lab.ip("H", ["-j", "link", "show"])).includes('"ifname":"wg0"') ? undefined : true), { timeoutMs: 30_000 });
    await c.lab.startHostWireguard((await c.wireguardNetdev())!);
  }
  const { code, stdout } = await running;
  assert.is(code, 0, stdout);
  assert.match(stdout, /50-wg0\.netdev +updated/);
  const wg0After = JSON.parse(await c.lab.ip("H", ["-j", "link", "show", "wg0"]))[0].ifindex;
  if (version >= 257) {
    assert.match(stdout, new RegExp(`^wg0: its \\.netdev changed; networkd ${version} applies it on reload, keeping the link`, "m"), `networkd ${version}`);
    assert.not.match(stdout, /recreating/, `networkd ${version} updates wg0 on reload: no recreation`);
    assert.is(wg0After, wg0Before, `networkd ${version}: wg0 is the same link`);
  } else {
    assert.match(stdout, new RegExp(`^recreating wg0: its \\.netdev changed and networkd ${version} applies a \\.netdev only when it creates the link; wg0 drops for a moment$`, "m"), `networkd ${version}`);
    assert.ok(wg0After !== wg0Before, `networkd ${version}: wg0 is a new link`);
  }
  assert.match(stdout, /^wg0: configured, wg0-split: configured$/m);
  assert.match(stdout, /^all \d+ checks passed$/m);
  assert.match(await c.lab.inHost(["wg", "show", "wg0", "listen-port"]), /^51999$/m);
  assert.match(await c.lab.inHost(["wg", "show", "wg0", "persistent-keepalive"]), /\t15$/m);
  // Traffic resumes through the tunnel (a new handshake on the first packet).
  const spec = TOML.parse(await readFile(c.specPath, "utf8")) as Record<string, any>;
  const tunnel4 = (spec.tunnel.addresses as string[]).find((a) => !a.includes(":"))!.split("/")[0];
  const [tcp] = await c.lab.probe([{ proto: "tcp", host: ADDR.server4, timeoutMs: 5000 }]);
  assert.ok(tcp!.ok && tcp!.saw === tunnel4, `networkd ${version}: TCP to ${ADDR.server4} after the change: ${JSON.stringify(tcp)}`);
  steps.push(
    version >= 257
      ? `networkd ${version}: listen port and keepalive changed: reload only, same wg0 (updated in place), listen port 51999, traffic resumed, doctor passed`
      : `networkd ${version}: listen port and keepalive changed: 'recreating wg0', networkctl delete wg0 + reload, new wg0 (listen port 51999) configured, traffic resumed, doctor passed`,
  );
});

// ------------------------------------------------------------------ apply --try
//
// The lab's "SSH": a TCP server in H on its LAN address, reached from the internet
// server I (198.51.100.80, 2001:db8:99::80) through the router. The baseline spec has
// split.inbound = "direct" (the default), so H's replies leave the way the connection
// came in; the tried spec has "capture" (see setInbound), so H's replies are captured into the tunnel,
// whose peer drops them (their source is not H's tunnel address): the try cuts the
// very path an SSH session to H would use.

const SSH_PORT = 2222;
const TRY_SECONDS = 8;
let sshServer: Proc | undefined;
let networkdVersion = "?";
let tries = 0;

/** What an SSH client on the internet segment sees: one line per family that fails, or none. */
async function sshFailures(c: SplitCase): Promise<string[]> {
  const results = await c.lab.probe(
    [ADDR.hostLan4, ADDR.hostLan6].map((host) => ({ proto: "tcp" as const, host, port: SSH_PORT, timeoutMs: 1500 })),
    "I",
  );
  return results.flatMap((r, i) => (r.ok ? [] : [`${i === 0 ? ADDR.hostLan4 : `[${ADDR.hostLan6}]`}:${SSH_PORT} from I: ${r.error}`]));
}

/** Every generated file and drop-in: `ls -l` and its bytes (line), and its mtime. */
async function filesOnDisk(c: SplitCase): Promise<{ line: string; mtimeMs: number }[]> {
  const files: { line: string; mtimeMs: number }[] = [];
  for (const dir of [c.lab.genDir, join(c.lab.genDir, "networkd.conf.d")]) {
    for (const name of (await readdir(dir)).sort()) {
      if (name.startsWith(".") && name !== RECORD_NAME) continue; // a file being staged (awaitRevert checks none is left)
      const info = await lstat(join(dir, name));
      if (info.isDirectory()) continue;
      const bytes = createHash("sha256").update(await readFile(join(dir, name))).digest("hex");
      files.push({ line: `${name} ${(info.mode & 0o7777).toString(8)} ${info.uid}:${info.gid} ${bytes}`, mtimeMs: info.mtimeMs });
    }
  }
  return files;
}

interface HostState {
  files: { line: string; mtimeMs: number }[];
  kernel: KernelState;
}

async function hostState(c: SplitCase, tables: string[]): Promise<HostState> {
  return { files: await filesOnDisk(c), kernel: await c.kernelState(tables) };
}

/** The same files (bytes, modes, owners) and kernel state; with MTIMES, also the same mtimes (to the microsecond: node sets them as a double). */
const same = (a: HostState, b: HostState, mtimes = true) =>
  JSON.stringify([a.kernel, a.files.map((f) => f.line)]) === JSON.stringify([b.kernel, b.files.map((f) => f.line)]) &&
  (!mtimes || a.files.every((f, i) => Math.abs(f.mtimeMs - b.files[i]!.mtimeMs) < 0.001));

/** What differs between two host states, one line each. */
function stateDiff(a: HostState, b: HostState): string {
  const lines = (s: HostState) => [...s.kernel.rules, ...s.kernel.routes, ...s.files.map((f) => `${f.line} mtime ${f.mtimeMs}`)];
  const [x, y] = [lines(a), lines(b)];
  return [...x.filter((l) => !y.includes(l)).map((l) => `  before: ${l}`), ...y.filter((l) => !x.includes(l)).map((l) => `  now:    ${l}`)].join("\n");
}

/**
 * The tried spec: split.inbound = "capture", whose capture rules also take H's replies to
 * inbound connections. The baseline: "direct" (the default), and I's IPv6 source excluded,
 * since with ipv6 = "block" blocked IPv6 is captured from every source, inbound replies
 * too (inbound.test.ts).
 */
async function setInbound(c: SplitCase, inbound: "direct" | "capture"): Promise<void> {
  const i6 = `${ADDR.server6}/128`;
  await editSpec(c, (spec) => {
    spec.split.exclude = spec.split.exclude.filter((p: string) => p !== i6);
    if (inbound === "capture") spec.split.inbound = "capture";
    else {
      delete spec.split.inbound;
      spec.split.exclude.push(i6);
    }
  });
}

/** The try's record (the one pending), read from the state directory. */
async function pendingTry(c: SplitCase): Promise<{ id: string; deadline: number; watcher: number }> {
  const name = (await readdir(stateDir(c))).find((n) => n.startsWith("pending-"));
  assert.ok(name, `no pending try in ${stateDir(c)}`);
  const record = JSON.parse(await readFile(join(stateDir(c), name!, "record.json"), "utf8"));
  const watcher = Number((await readFile(join(stateDir(c), name!, "watcher.pid"), "utf8")).split(" ")[0]);
  return { id: record.id, deadline: record.deadline, watcher };
}

/** Starts `apply --try` in H (optionally on a terminal, as script(1) gives one); resolves once it waits for a decision. */
async function startTry(c: SplitCase, options: { terminal?: boolean; seconds?: number } = {}): Promise<Proc> {
  const argv = applyArgv(c, ["--try", String(options.seconds ?? TRY_SECONDS)]);
  // `exec`: the apply is the terminal's foreground process, as from an interactive shell (which
  // gives each job its own process group). A shell left in between (script(1) runs $SHELL, dash
  // where SHELL is unset) would get the Ctrl-C too and exit by it, and script(1) with it.
  const command = options.terminal ? ["script", "-qfec", `exec ${argv.map((a) => `'${a}'`).join(" ")}`, "/dev/null"] : argv;
  return Proc.start(`apply-try-${++tries}`, c.lab.hostArgv(command), {
    logFile: c.lab.log(`apply-try-${tries}`),
    env: { NO_COLOR: "1" },
    ready: /Keep this configuration\?/,
    timeoutMs: 60_000,
    stdin: options.terminal ?? false,
  });
}

/** PIDs of PID's descendants (to see the apply under script(1) die with its terminal). */
async function descendants(pid: number): Promise<number[]> {
  const children = (await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "")).split(" ").filter(Boolean).map(Number);
  return [...children, ...(await Promise.all(children.map(descendants))).flat()];
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !readFileSyncSafe(`/proc/${pid}/stat`).includes(") Z ");
function readFileSyncSafe(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/**
 * After the process that ran the try is gone: polls until the host is back in BEFORE
 * (files byte-identical, kernel rules and routes equal) and the SSH path works again;
 * returns ms after the deadline, and the watcher's own account.
 */
async function awaitRevert(c: SplitCase, before: HostState, tables: string[], pending: { id: string; deadline: number }): Promise<{ backMs: number; result: any }> {
  let brokenAtDeadline: boolean | undefined;
  await poll(
    "the previous state back: files, kernel, the SSH path",
    async () => {
      if (brokenAtDeadline === undefined && Date.now() > pending.deadline - 1000) brokenAtDeadline = !same(await hostState(c, tables), before);
      return same(await hostState(c, tables), before) ? true : undefined;
    },
    { timeoutMs: pending.deadline - Date.now() + 20_000, intervalMs: 100, describe: async () => stateDiff(before, await hostState(c, tables)) },
  );
  const backMs = Date.now() - pending.deadline;
  const resultFile = join(stateDir(c), `reverted-${pending.id}.json`);
  await poll("the watcher's report", () => (existsSync(resultFile) ? true : undefined), { timeoutMs: 30_000 });
  for (const dir of [c.lab.genDir, join(c.lab.genDir, "networkd.conf.d")]) {
    assert.equal((await readdir(dir)).filter((n) => n.startsWith(".") && n !== RECORD_NAME), [], `no temporary file left in ${dir}`);
  }
  assert.equal(await sshFailures(c), [], "the SSH path works again");
  assert.ok(brokenAtDeadline, "the new state was still in place a second before the deadline: the revert waited for it");
  const result = JSON.parse(await readFile(resultFile, "utf8"));
  assert.ok(result.claimed >= pending.deadline, `claimed ${result.claimed - pending.deadline} ms after the deadline, not before`);
  assert.ok(backMs < 10_000, `the old state was back ${backMs} ms after the deadline`);
  return { backMs, result };
}

const timings = (result: any) =>
  `claimed +${result.claimed - result.deadline} ms, files +${result.filesRestored - result.deadline} ms, reloaded +${result.reloaded - result.deadline} ms, configured +${result.configured - result.deadline} ms`;

let baseline: HostState;
let tables: string[] = [];

t.test("apply refuses a directory networkd does not read (unless --any-dir) and says so; the SSH path works on the baseline", async (c) => {
  networkdVersion = (await c.lab.inHost(["networkctl", "--version"])).split("\n")[0]!.trim();
  sshServer = await Proc.start("ssh-H", c.lab.hostArgv([process.execPath, join(ROOT, "test/lab/helpers/echo-server.mjs"), String(SSH_PORT)]), {
    logFile: c.lab.log("ssh-H"),
    ready: /^ready$/,
  });
  await setInbound(c, "direct");
  const refused = await inHost(c, [process.execPath, CLI, "apply", c.specPath, "-o", c.lab.genDir, "--yes", "--state-dir", stateDir(c)]);
  assert.is(refused.code, 3, refused.stderr);
  assert.match(refused.stderr, /apply: networkd does not read .*\/gen \(it reads \/etc\/systemd\/network, \/run\/systemd\/network, .*\), so applying there would change nothing; nothing was written; pass --any-dir/);
  const { code, stdout } = await apply(c);
  assert.is(code, 0, stdout);
  tables = (await c.plannedState()).tables;
  baseline = await hostState(c, tables);
  assert.equal(await sshFailures(c), [], "the SSH path works on the baseline");
  steps.push(`directory guard: -o ${c.lab.genDir} refused (exit 3); baseline (inbound = "direct") applied, SSH from I works`);
});

t.test("apply --try that cuts the SSH path, its process killed (SIGKILL): a second try and a plain apply are refused meanwhile; the old state is back after the deadline", async (c) => {
  await setInbound(c, "capture");
  const trying = await startTry(c);
  const pending = await pendingTry(c);
  assert.ok((await sshFailures(c)).length === 2, "the tried spec cuts the SSH path (both families)");
  assert.match(trying.lines.join("\n"), /50-wg0-split\.network +updated/);
  const second = await apply(c, ["--try", "30"]);
  assert.is(second.code, 3, second.stderr);
  assert.match(second.stderr, /apply: a try of .*spec\.toml \(started .*\) is pending; nothing was written; confirm it with `gen-networkd apply --confirm`/);
  const plain = await apply(c);
  assert.is(plain.code, 3, plain.stderr);
  assert.match(plain.stderr, /is pending; nothing was written/);
  assert.is(await trying.kill("SIGKILL"), null);
  const { backMs, result } = await awaitRevert(c, baseline, tables, pending);
  assert.not.ok(alive(pending.watcher), "the watcher exited after reverting");
  assert.equal(result.files.map((f: any) => `${f.path.replace(/.*\//, "")} ${f.what}`).sort(), ["50-wg0-split.network restored"], "only the file the try changed is restored (every file's header hashes what that file configures)");
  steps.push(`--try ${TRY_SECONDS}, SSH cut, second try and plain apply refused (exit 3), apply SIGKILLed: old state back (files, kernel, SSH) ${backMs} ms after the deadline (watcher: ${timings(result)})`);
});

t.test("apply --try on a terminal whose session dies (the terminal hangs up: SIGHUP): the old state is back after the deadline, and the next apply reports it", async (c) => {
  const trying = await startTry(c, { terminal: true });
  const pending = await pendingTry(c);
  assert.ok((await sshFailures(c)).length === 2, "the tried spec cuts the SSH path");
  assert.match(trying.lines.join("\n"), /Press Enter to keep it/);
  const below = (await descendants(trying.pid)).filter((pid) => pid !== pending.watcher);
  assert.ok(below.length > 0, "script(1) runs the apply");
  await trying.kill("SIGKILL"); // script(1) gone: the terminal hangs up, as sshd's does when the connection dies
  await poll("the apply to die with its terminal", () => (below.some(alive) ? undefined : true), { timeoutMs: 5000 });
  const { backMs, result } = await awaitRevert(c, baseline, tables, pending);
  await setInbound(c, "direct"); // the spec of the state now on disk: nothing to write
  const next = await apply(c);
  assert.match(next.stdout, /^an earlier try was reverted while nobody watched:\nreverted the try of .*spec\.toml \(nobody confirmed it in time\):$/m);
  steps.push(`--try on a terminal, terminal hung up (the apply died with it): old state back ${backMs} ms after the deadline (watcher: ${timings(result)}); the next apply showed the report`);
});

t.test("apply --try confirmed with Enter on its terminal: the new state stays past the deadline", async (c) => {
  await setInbound(c, "capture");
  const trying = await startTry(c, { terminal: true });
  const pending = await pendingTry(c);
  const tried = await hostState(c, tables);
  trying.write("\n");
  assert.match(await trying.waitForLine(/confirmed: keeping the new configuration/, 5000), /confirmed/);
  assert.is(await trying.exited, 0, trying.tail());
  await poll("the watcher to stop", () => (alive(pending.watcher) ? undefined : true), { timeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, Math.max(0, pending.deadline - Date.now()) + 2000));
  assert.ok(same(await hostState(c, tables), tried), "the tried state is still there 2 s after the deadline");
  assert.is((await sshFailures(c)).length, 2, "and it still cuts the SSH path, as confirmed");
  assert.equal((await readdir(stateDir(c))).filter((n) => !n.startsWith("lock")), [], "nothing of the try is left");
  steps.push("--try confirmed with Enter: watcher stopped, tried state (SSH cut) still there 2 s after the deadline");
});

t.test("apply --try confirmed with `apply --confirm` from another shell: the new state stays past the deadline", async (c) => {
  await setInbound(c, "direct"); // back to the baseline, this time by a try
  const trying = await startTry(c);
  const pending = await pendingTry(c);
  const confirm = await inHost(c, [process.execPath, CLI, "apply", "--confirm", "--state-dir", stateDir(c)]);
  assert.is(confirm.code, 0, confirm.stderr);
  assert.match(confirm.stdout, /^confirmed: keeping the configuration the try of .*spec\.toml wrote to \/run\/systemd\/network$/m);
  assert.match(await trying.waitForLine(/confirmed from another shell: keeping the new configuration/, 5000), /confirmed/);
  assert.is(await trying.exited, 0, trying.tail());
  assert.not.ok(alive(pending.watcher), "the confirmation stopped the watcher");
  await new Promise((r) => setTimeout(r, Math.max(0, pending.deadline - Date.now()) + 2000));
  assert.ok(same(await hostState(c, tables), baseline, false), "the confirmed state (the baseline again, freshly written) is there 2 s after the deadline");
  assert.equal(await sshFailures(c), []);
  const again = await inHost(c, [process.execPath, CLI, "apply", "--confirm", "--state-dir", stateDir(c)]);
  assert.is(again.code, 1);
  assert.match(again.stderr, /no try is pending .* so there is nothing to confirm/);
  steps.push("--try confirmed by `apply --confirm` from another shell: state kept 2 s past the deadline; a second --confirm: nothing pending (exit 1)");
});

t.test("apply --try interrupted with Ctrl-C on its terminal: reverted at once, before the deadline, by the apply itself", async (c) => {
  await setInbound(c, "capture");
  const before = await hostState(c, tables);
  // A long try: "before the deadline" must not depend on how loaded the machine is.
  const trying = await startTry(c, { terminal: true, seconds: 120 });
  const pending = await pendingTry(c);
  trying.write("\x03"); // the terminal turns it into SIGINT for the apply
  await trying.waitForLine(/reverted the try of .*spec\.toml \(as requested\):/, 60_000);
  assert.is(await trying.exited, 1, trying.tail());
  assert.ok(Date.now() < pending.deadline, "reverted before the deadline");
  assert.ok(same(await hostState(c, tables), before), `the files and the kernel are as before the try:\n${stateDiff(before, await hostState(c, tables))}`);
  assert.equal(await sshFailures(c), []);
  await poll("the watcher to stop", () => (alive(pending.watcher) ? undefined : true), { timeoutMs: 5000 });
  assert.equal((await readdir(stateDir(c))).filter((n) => !n.startsWith(".")), [], "nothing of the try is left, no report for later");
  steps.push("--try interrupted with Ctrl-C: reverted by the apply before the deadline (exit 1), watcher stopped, nothing left");
});

t.test("a try whose watcher is gone (as after a reboot): applies are refused with what to do, and `apply --revert` restores the old state", async (c) => {
  await setInbound(c, "capture");
  const before = await hostState(c, tables);
  const trying = await startTry(c);
  const pending = await pendingTry(c);
  await trying.kill("SIGKILL");
  process.kill(pending.watcher, "SIGKILL");
  await poll("the watcher to die", () => (alive(pending.watcher) ? undefined : true), { timeoutMs: 5000 });
  const refused = await apply(c);
  assert.is(refused.code, 3, refused.stderr);
  assert.match(refused.stderr, /is pending; nothing was written; its watcher is gone \(a reboot, or it was killed\), so nothing reverts it by itself: `gen-networkd apply --confirm` keeps the current files, `gen-networkd apply --revert` restores the ones from before it/, refused.stderr);
  const started = Date.now();
  const revert = await inHost(c, [process.execPath, CLI, "apply", "--revert", "--state-dir", stateDir(c)]);
  const tookMs = Date.now() - started;
  assert.is(revert.code, 0, revert.stderr);
  assert.match(revert.stdout, /^reverted the try of .*spec\.toml \(as requested\):$/m);
  assert.ok(same(await hostState(c, tables), before), `the files and the kernel are as before the try:\n${stateDiff(before, await hostState(c, tables))}`);
  assert.equal(await sshFailures(c), []);
  assert.equal((await readdir(stateDir(c))).filter((n) => !n.startsWith(".")), [], "nothing of the try is left");
  steps.push(`try orphaned (apply and watcher SIGKILLed): apply refused naming --confirm/--revert; \`apply --revert\` restored it in ${tookMs} ms (whole command)`);
});

t.test("a try while another run writes the directory: refused once the wait is over, nothing written", async (c) => {
  const before = await filesOnDisk(c);
  const { code, stderr } = await withDirectoryLock([c.lab.genDir], () => apply(c, ["--try", "30", "--wait", "1"]), { waitMs: 0 });
  assert.is(code, 3, stderr);
  assert.match(stderr, new RegExp(`/run/systemd/network is locked by gen-networkd PID ${process.pid}, which is writing it`), stderr);
  assert.equal(await filesOnDisk(c), before);
  assert.equal((await readdir(stateDir(c))).filter((n) => !n.startsWith(".")), [], "no try was begun");
  steps.push("directory locked by another run: apply --try --wait 1 refused (exit 3), nothing written");
});

t.test("apply says when networkd is not running, and writes nothing", async (c) => {
  await setInbound(c, "capture");
  const before = await filesOnDisk(c);
  await c.lab.stopNetworkd();
  try {
    for (const extra of [["--yes"], ["--try", "30"]]) {
      const { code, stderr } = await apply(c, extra);
      assert.is(code, 3, stderr);
      assert.match(stderr, /apply: systemd-networkd is not running \(in this network namespace\), so nothing could reload the files; nothing was written/, stderr);
    }
    assert.equal(await filesOnDisk(c), before);
    assert.equal((await readdir(stateDir(c))).filter((n) => !n.startsWith(".")), [], "no try was begun");
  } finally {
    await c.lab.startNetworkd();
  }
  steps.push("networkd stopped: apply and apply --try refused (exit 3), nothing written");
});

t.run();
