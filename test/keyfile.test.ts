// Key-file checks (issue 14 item 17): the fix for a key behind a closed directory does not
// put it back there, a directory is not a key file, and garbage content is not a key.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keyFileWarnings as keyFileProblems } from "../src/keyfile.js";

const keyFileWarnings = async (path: string, specPath: string) => (await keyFileProblems(path, specPath)).map((w) => w.text);

const KEY = "4kQT3smJgD94joC+o+whDz6zEdg42kZIryzw0Rw2w24=";
const hasNetworkdUser = readFileSync("/etc/passwd", "utf8").includes("\nsystemd-network:");
let work = "";
test.before.each(() => {
  work = mkdtempSync(join(tmpdir(), "gen-networkd-keyfile-"));
  chmodSync(work, 0o755);
});
test.after.each(() => rmSync(work, { recursive: true, force: true }));

(hasNetworkdUser ? test : test.skip)("a key inside a 0700 directory: the fix opens the directory or moves the key, never reinstalls it there", async () => {
  const dir = join(work, "wireguard");
  mkdirSync(dir, { mode: 0o700 });
  chmodSync(dir, 0o700);
  const key = join(dir, "wg0.key");
  writeFileSync(key, `${KEY}\n`, { mode: 0o640 });
  const [warning, ...rest] = await keyFileWarnings(key, "spec.toml");
  assert.equal(rest.length, 1, "the key's own group is reported too");
  assert.match(warning!, new RegExp(`not readable by systemd-network because of directory ${dir} \\(mode 0700\\)`));
  assert.ok(warning!.includes(`Fix: chgrp systemd-network ${dir} && chmod 0750 ${dir}, or move the key: install -m 0640 -o root -g systemd-network ${key} /etc/systemd/network/wg0.key`), warning);
  assert.not.ok(warning!.includes(`YOUR.key ${key}`), warning);
  const [problem] = await keyFileProblems(key, "spec.toml");
  assert.is(problem!.fix, `chgrp systemd-network ${dir} && chmod 0750 ${dir}, or move the key: install -m 0640 -o root -g systemd-network ${key} /etc/systemd/network/wg0.key and name /etc/systemd/network/wg0.key in the spec`);
});

test("a directory given as the key file is named as such, without a chmod", async () => {
  const dir = join(work, "keys");
  mkdirSync(dir, { mode: 0o755 });
  const warnings = await keyFileWarnings(dir, "spec.toml");
  assert.equal(warnings, [`spec.toml: key file ${dir} is a directory, not a file; name the key file itself, e.g. ${join(dir, "wg0.key")}`]);
});

test("garbage content is not a key (checked when readable; the content is never shown)", async () => {
  const key = join(work, "wg0.key");
  for (const content of ["secret\n", `${KEY.slice(0, 43)}\n`, `${KEY}${KEY}\n`, "", "\u0000".repeat(32)]) {
    writeFileSync(key, content, { mode: 0o640 });
    chmodSync(key, 0o640);
    const warnings = await keyFileWarnings(key, "spec.toml");
    assert.equal(warnings.filter((w) => !/not readable by systemd-network/.test(w)), [
      `spec.toml: key file ${key} does not hold a WireGuard key (32 bytes in base64, 44 characters, as \`wg genkey\` or \`wg genpsk\` print); networkd would refuse the device. Fix: wg genkey > ${key}`,
    ], JSON.stringify(content));
    for (const w of warnings) assert.not.ok(content.trim() !== "" && w.includes(content.trim()), "the content is never shown");
  }
  for (const content of [`${KEY}\n`, KEY, `  ${KEY}\r\n`]) {
    writeFileSync(key, content, { mode: 0o640 });
    assert.equal((await keyFileWarnings(key, "spec.toml")).filter((w) => /WireGuard key/.test(w)), [], JSON.stringify(content));
  }
});

test.run();
