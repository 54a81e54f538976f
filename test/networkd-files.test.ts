// Which .network files networkd would configure our links from before ours: masking
// across directories, name order across directories, [Match] Name= globs (negation,
// several lines, resets), a [Match] without keys, other keys ("may match"), ours never
// reported; and the reader of real directories, which skips what it cannot read.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { globMatches, matchRules, readNetworkFiles, shadowingFiles, shadowingWarning, type NetworkFile, type OurNetwork } from "../src/networkd-files.js";

const ETC = "/etc/systemd/network";
const RUN = "/run/systemd/network";
const USR = "/usr/lib/systemd/network";
const DIRS = [ETC, RUN, USR];
const OURS: OurNetwork[] = [
  { link: "wg0", fileName: "50-wg0.network" },
  { link: "wg0-split", fileName: "50-wg0-split.network" },
];

const file = (dir: string, name: string, match?: string): NetworkFile => (match === undefined ? { dir, name } : { dir, name, match: matchRules(match) });
/** "PATH LINK certain|may", one per shadowing file, ours written into DIR. */
const found = (files: NetworkFile[], dir = ETC) => shadowingFiles(DIRS, files, dir, OURS).map((s) => `${s.path} ${s.link} ${s.certain ? "certain" : "may"}`);

test("a file sorting before ours whose Name= is our link takes it; one for another link does not", () => {
  assert.equal(found([file(ETC, "10-wg0.network", "[Match]\nName=wg0\n"), file(ETC, "10-eth0.network", "[Match]\nName=eth0\n")]), [`${ETC}/10-wg0.network wg0 certain`]);
});

test("a file sorting after ours never takes the link, whatever it matches", () => {
  assert.equal(found([file(ETC, "60-all.network", "[Match]\nName=*\n"), file(ETC, "50-wg0.networkx", "[Match]\nName=*\n")]), []);
});

test("names sort across directories: a distribution's 10- file in /usr/lib comes before ours in /etc", () => {
  assert.equal(found([file(USR, "10-all.network", "[Match]\nName=*\n")]), [`${USR}/10-all.network wg0 certain`, `${USR}/10-all.network wg0-split certain`]);
  // '-' sorts before '.': 50-wg0-a.network comes before 50-wg0.network (but after nothing of wg0-split's).
  assert.equal(found([file(RUN, "50-wg0-a.network", "[Match]\nName=wg0\n")]), [`${RUN}/50-wg0-a.network wg0 certain`]);
});

test("masking: an earlier directory's file of the same name hides the later one, a mask hides it and matches nothing", () => {
  const later = file(USR, "10-all.network", "[Match]\nName=*\n");
  assert.equal(found([file(ETC, "10-all.network"), later]), [], "masked by /dev/null or an empty file");
  assert.equal(found([file(ETC, "10-all.network", "[Match]\nName=eth0\n"), later]), [], "replaced by a narrower file");
  assert.equal(found([file(RUN, "10-all.network", "[Match]\nName=eth0\n"), file(USR, "10-all.network", "[Match]\nName=*\n")], RUN), []);
});

test("a file of our name in a directory read before ours replaces or masks ours; one read after ours is hidden by ours", () => {
  const replaced = shadowingFiles(DIRS, [file(ETC, "50-wg0.network", "[Match]\nName=wg0\n")], RUN, OURS);
  assert.equal(replaced.map((s) => [s.path, s.kind, s.link]), [[`${ETC}/50-wg0.network`, "replaces", "wg0"]]);
  assert.match(replaced[0]!.why, /has the name of ours in \/etc\/systemd\/network, which networkd reads before \/run\/systemd\/network/);
  assert.equal(shadowingFiles(DIRS, [file(ETC, "50-wg0.network")], RUN, OURS).map((s) => s.kind), ["masks"]);
  assert.equal(found([file(USR, "50-wg0.network", "[Match]\nName=*\n")], RUN), []);
});

test("our own files are never reported, also the ones already in our directory", () => {
  assert.equal(found([file(ETC, "50-wg0.network", "[Match]\nName=wg0\n"), file(ETC, "50-wg0-split.network", "[Match]\nName=wg0-split\n")]), []);
});

test("Name= globs: *, ?, [...], [!...], backslash", () => {
  assert.ok(globMatches("*", "wg0"));
  assert.ok(globMatches("wg*", "wg0-split"));
  assert.ok(globMatches("wg?", "wg0"));
  assert.not.ok(globMatches("wg?", "wg0-split"));
  assert.ok(globMatches("wg[0-9]", "wg0"));
  assert.not.ok(globMatches("wg[!0-9]", "wg0"));
  assert.ok(globMatches("wg[^a]", "wg0"));
  assert.ok(globMatches("wg\\*", "wg*"));
  assert.not.ok(globMatches("wg\\*", "wg0"));
  assert.ok(globMatches("w.0", "w.0"));
  assert.not.ok(globMatches("w.0", "wx0"));
  assert.ok(globMatches("wg[", "wg["), "an unterminated bracket is literal");
});

test("Name= lists: space-separated, several lines merged, a leading ! negates the assignment, an empty one resets", () => {
  const at = (match: string) => found([file(ETC, "10-x.network", match)]);
  assert.equal(at("[Match]\nName=eth0 wg0\n"), [`${ETC}/10-x.network wg0 certain`]);
  assert.equal(at("[Match]\nName=eth0\nName=wg0-split\n"), [`${ETC}/10-x.network wg0-split certain`]);
  assert.equal(at("[Match]\nName=!wg0 eth0\n"), [`${ETC}/10-x.network wg0-split certain`], "the ! negates both: every link but wg0 and eth0");
  assert.equal(at("[Match]\nName=eth0\nName=!wg0-split\n"), [], "a positive pattern must match too");
  assert.equal(at("[Match]\nName=wg*\nName=!wg0-split\n"), [`${ETC}/10-x.network wg0 certain`]);
  assert.equal(at("[Match]\nName=eth0\nName=\n"), [`${ETC}/10-x.network wg0 certain`, `${ETC}/10-x.network wg0-split certain`], "reset: no Name= left, no keys left");
  assert.equal(matchRules("[Match]\nName=!a b\n").names, ["!a", "!b"]);
});

test("a [Match] without keys, or none at all, matches every link", () => {
  for (const text of ["[Match]\n[Network]\nDHCP=yes\n", "[Network]\nDHCP=yes\n", "# only a comment\n"]) {
    const all = shadowingFiles(DIRS, [file(ETC, "10-x.network", text)], ETC, OURS);
    assert.equal(all.map((s) => s.link), ["wg0", "wg0-split"], text);
    assert.match(all[0]!.why, /its \[Match\] section is empty or missing, so it matches every link, wg0 too/);
  }
});

test("other [Match] keys cannot be checked before the link exists: such a file may match, and a later certain one is still reported", () => {
  const both = shadowingFiles(DIRS, [file(ETC, "10-virt.network", "[Match]\nType=wireguard\n"), file(ETC, "20-wg.network", "[Match]\nName=wg*\nDriver=wireguard\n"), file(ETC, "30-wg.network", "[Match]\nName=wg0\n"), file(ETC, "40-wg.network", "[Match]\nName=wg0\n")], ETC, OURS).filter((s) => s.link === "wg0");
  assert.equal(both.map((s) => [s.path, s.certain]), [[`${ETC}/10-virt.network`, false], [`${ETC}/20-wg.network`, false], [`${ETC}/30-wg.network`, true]], "networkd stops at the first certain match");
  assert.match(both[0]!.why, /its \[Match\] has no Name= and Type=wireguard, which cannot be checked before wg0 exists/);
  assert.match(both[1]!.why, /Name=wg\* matches wg0, and whether Driver=wireguard holds cannot be checked/);
  assert.match(shadowingWarning(both[0]!), /^warning: \/etc\/systemd\/network\/10-virt\.network sorts before 50-wg0\.network and .*: networkd may configure wg0 from it, not from 50-wg0\.network; regenerate ours with --prefix 09/);
  assert.match(shadowingWarning(both[2]!), /networkd would configure wg0 from it/);
});

test("the reader: .network files only, masks recognized, missing directories, dangling links, directories and broken syntax skipped", async () => {
  const work = mkdtempSync(join(tmpdir(), "gen-networkd-files-"));
  try {
    const etc = join(work, "etc");
    mkdirSync(etc);
    writeFileSync(join(etc, "10-wg0.network"), "[Match]\nName=wg0\n");
    writeFileSync(join(etc, "20-empty.network"), "");
    symlinkSync("/dev/null", join(etc, "30-null.network"));
    symlinkSync(join(work, "nowhere"), join(etc, "40-dangling.network"));
    writeFileSync(join(etc, "50-broken.network"), "[Match\nName=wg0\n");
    writeFileSync(join(etc, "60-wg0.link"), "[Match]\nOriginalName=*\n");
    mkdirSync(join(etc, "70-dir.network"));
    const list = await readNetworkFiles([etc, join(work, "missing")]);
    assert.equal(
      list.map((f) => [f.name, f.match?.names ?? "mask"]),
      [["10-wg0.network", ["wg0"]], ["20-empty.network", "mask"], ["30-null.network", "mask"]],
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

test.run();
