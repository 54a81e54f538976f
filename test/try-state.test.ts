// `apply --try`'s state on disk, without networkd: the backups bring back every file
// byte for byte (mode, owner, mtime, symlinks, removed and created files), a
// confirmation and a revert claim a try exactly once, and the lock and the pending
// check refuse a second apply. The revert with the real networkd is in the lab
// (test/lab/apply.test.ts).
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  activeTries,
  beginTry,
  claim,
  finishRevert,
  newTryId,
  refuseIfTrying,
  restoreFiles,
  stillRunning,
  takeUnseenResults,
  writeWatcherPid,
  type RevertResult,
} from "../src/try-state.js";

let work = "";
test.before.each(() => {
  work = mkdtempSync(join(tmpdir(), "gen-networkd-try-"));
});
test.after.each(() => rmSync(work, { recursive: true, force: true }));

const snapshot = (dir: string) =>
  readdirSync(dir)
    .sort()
    .map((name) => {
      const path = join(dir, name);
      const info = lstatSync(path);
      const what = info.isSymbolicLink() ? `-> ${readlinkSync(path)}` : readFileSync(path).toString("base64");
      return `${name} ${(info.mode & 0o7777).toString(8)} ${info.uid}:${info.gid} ${info.isSymbolicLink() ? "" : Math.round(info.mtimeMs)} ${what}`;
    });

test("a revert brings back every file byte for byte: updated, removed and created files, modes, owners, mtimes, symlinks", async () => {
  const net = join(work, "network");
  const conf = join(work, "networkd.conf.d");
  const state = join(work, "state");
  mkdirSync(net);
  mkdirSync(conf);
  const bytes = Buffer.from([0x23, 0x20, 0xff, 0xfe, 0x00, 0x0a, 0x5b, 0x4d, 0x61, 0x74, 0x63, 0x68, 0x5d, 0x0a]); // not even UTF-8
  writeFileSync(join(net, "50-wg0.network"), bytes);
  chmodSync(join(net, "50-wg0.network"), 0o640);
  if (process.getuid?.() === 0) chownSync(join(net, "50-wg0.network"), 65534, 65534);
  utimesSync(join(net, "50-wg0.network"), new Date(1_000_000_000_000), new Date(1_000_000_000_000));
  writeFileSync(join(net, "50-wg0.netdev"), "[NetDev]\nName=wg0\n");
  symlinkSync("/dev/null", join(net, "50-wg0-split.netdev"));
  writeFileSync(join(conf, "50-wg0.conf"), "[Network]\nManageForeignRoutingPolicyRules=false\n");
  const before = [...snapshot(net), ...snapshot(conf)];

  const id = newTryId();
  const trying = await beginTry(state, { id, spec: "/s.toml", output: net, seconds: 120, started: Date.now() }, [
    { path: join(net, "50-wg0.network"), content: "new network\n" },
    { path: join(net, "50-wg0-split.netdev"), content: "new split netdev\n" },
    { path: join(net, "50-wg0.netdev") }, // the try removes it
    { path: join(net, "50-wg0-split.network"), content: "created by the try\n" },
    { path: join(conf, "50-wg0.conf"), content: "new drop-in\n" },
  ]);
  assert.equal(readdirSync(state), [`pending-${id}`], "the try appears complete, under its final name only");
  // What the try then does to the files (write.ts's job), and someone editing one meanwhile.
  writeFileSync(join(net, "50-wg0.network"), "new network\n");
  unlinkSync(join(net, "50-wg0-split.netdev"));
  writeFileSync(join(net, "50-wg0-split.netdev"), "edited by hand during the try\n");
  unlinkSync(join(net, "50-wg0.netdev"));
  writeFileSync(join(net, "50-wg0-split.network"), "created by the try\n");
  writeFileSync(join(conf, "50-wg0.conf"), "new drop-in\n");
  assert.not.equal([...snapshot(net), ...snapshot(conf)], before);

  const claimed = (await claim(state, id, "revert"))!;
  const restored = await restoreFiles(claimed, trying.record);
  assert.equal([...snapshot(net), ...snapshot(conf)], before);
  assert.equal(
    restored.map((r) => `${r.path.slice(work.length + 1)} ${r.what}${r.changedDuringTry ? " (changed)" : ""}`),
    [
      "network/50-wg0.network restored",
      "network/50-wg0-split.netdev restored (changed)",
      "network/50-wg0.netdev recreated",
      "network/50-wg0-split.network removed",
      "networkd.conf.d/50-wg0.conf restored",
    ],
  );
  assert.not.ok(readdirSync(net).some((n) => n.startsWith(".")), "no temporary file is left");
});

test("a confirmation and a revert claim a try exactly once; a stale claim of another id fails", async () => {
  const state = join(work, "state");
  const id = newTryId();
  await beginTry(state, { id, spec: "/s.toml", output: work, seconds: 5, started: Date.now() }, []);
  const [confirmed, reverted] = await Promise.all([claim(state, id, "confirm"), claim(state, id, "revert")]);
  assert.ok((confirmed === undefined) !== (reverted === undefined), `exactly one wins: ${confirmed} / ${reverted}`);
  assert.is(await claim(state, id, "revert"), undefined);
  assert.is(await claim(state, newTryId(), "revert"), undefined);
});

test("while a try is pending every apply is refused, naming how to decide it; a finished revert's report is handed out once", async () => {
  const state = join(work, "state");
  await refuseIfTrying(state); // nothing pending, not even the directory
  const id = newTryId();
  const trying = await beginTry(state, { id, spec: "/etc/gen-networkd/wg0.toml", output: work, seconds: 5, started: Date.now() }, []);
  await writeWatcherPid(trying.dir);
  let message = "";
  await refuseIfTrying(state).catch((e: Error) => (message = e.message));
  assert.match(message, /^apply: a try of \/etc\/gen-networkd\/wg0.toml \(started .* UTC\) is pending; nothing was written; confirm it with `gen-networkd apply --confirm`, revert it with `gen-networkd apply --revert`, or wait until it reverts itself at .* UTC$/);
  // The watcher recorded is this test process; a record naming a process that is gone means nobody reverts it.
  writeFileSync(join(trying.dir, "watcher.pid"), "999999999 1\n");
  await refuseIfTrying(state).catch((e: Error) => (message = e.message));
  assert.match(message, /its watcher is gone \(a reboot, or it was killed\), so nothing reverts it by itself/);

  const claimed = (await claim(state, id, "revert"))!;
  assert.equal((await activeTries(state)).map((t) => t.stage), ["reverting"]);
  const result = { id, spec: "/s", output: work, trigger: "deadline", deadline: 0, claimed: 1, filesRestored: 2, files: [], recreated: [], linkStates: {}, notes: [] } satisfies RevertResult;
  await finishRevert(state, claimed, result);
  await refuseIfTrying(state);
  assert.equal((await takeUnseenResults(state)).map((r) => r.id), [id]);
  assert.equal(await takeUnseenResults(state), []);
});

test("a watcher is known by PID and start time: a PID reused by another process is not it", async () => {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise((done) => child.on("exit", done));
  assert.not.ok(stillRunning(`${child.pid} 12345\n`));
  const state = join(work, "state");
  const trying = await beginTry(state, { id: newTryId(), spec: "/s.toml", output: work, seconds: 5, started: Date.now() }, []);
  await writeWatcherPid(trying.dir);
  const [active] = await activeTries(state);
  assert.ok(stillRunning(active!.watcher!), "this process, as recorded");
  const [pid, start] = active!.watcher!.trim().split(" ");
  assert.not.ok(stillRunning(`${pid} ${Number(start) + 1}`), "the same PID with another start time");
});

test.run();
