// The project's unit-file parser reads what systemd reads: line ends (LF, CRLF, CR,
// NUL), comments, continuation lines (an odd number of trailing backslashes),
// surrounding whitespace. Checked against systemd's own parser where it runs here:
// `systemd-analyze verify` names every key it does not know, with its line.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseUnitFile } from "../src/unitfile.js";

/** Texts whose [Unit] section holds keys systemd does not know (A..Z), in tricky spellings. */
export const TRICKY_UNITS = [
  "\ufeff[Unit]\nA=1\n",
  "[Unit]\n# a comment ending in a backslash does not continue \\\nA=1\n",
  "[Unit]\nA=2 \\\n# a comment inside a continuation is dropped\n  B=3\nC=4\n",
  "[Unit]\nA=4\rB=5\r\nC=6\n",
  "[Unit]\nA=1\0B=2\n",
  "[Unit]\nA=/etc/wg0.key\\\nB=off\n",
  "[Unit]\nA=/etc/wg0.key\\\\\nB=off\n",
  "[Unit]\nA=x\\\\\\\nB=off\nC=1\n",
  "[Unit]\n  ; x\\\nA=8\n",
  "[Unit]\nA = spaced \t \nB\t=\tx\u00a0\n",
  "[Unit]\nA=1\n[Service]\nExecStart=/bin/true\n[Unit]\nB=\\\n",
];

/** The [Unit] keys our parser finds, in order. */
const ourKeys = (text: string) => parseUnitFile(text).filter((s) => s.name === "Unit").flatMap((s) => s.entries.map((e) => e.key));

test("continuation, line ends and comments: the keys and values systemd would see", () => {
  assert.equal(parseUnitFile("[X]\nA=/etc/wg0.key\\\nRouteTable=off\n")[0]!.entries, [{ key: "A", value: "/etc/wg0.key RouteTable=off" }]);
  assert.equal(parseUnitFile("[X]\nA=/k\\\\\nB=off\n")[0]!.entries, [{ key: "A", value: "/k\\\\" }, { key: "B", value: "off" }]);
  assert.equal(parseUnitFile("[X]\nA=1\rB=2\0C=3\r\n")[0]!.entries.map((e) => e.key), ["A", "B", "C"]);
  // systemd strips only space, tab, CR and LF; a no-break space stays part of the value.
  assert.equal(parseUnitFile("[X]\nA = v\u00a0 \t\n")[0]!.entries, [{ key: "A", value: "v\u00a0" }]);
});

const analyze = spawnSync("systemd-analyze", ["--version"], { encoding: "utf8" });
const skip = analyze.status === 0 ? test : test.skip;

skip("systemd-analyze verify finds exactly the keys our parser finds", () => {
  const dir = mkdtempSync(join(tmpdir(), "gen-networkd-unitfile-"));
  try {
    TRICKY_UNITS.forEach((text, index) => {
      const body = text.includes("[Service]") ? text : `${text}[Service]\nExecStart=/bin/true\n`;
      const path = join(dir, `t${index}.service`);
      writeFileSync(path, body);
      const result = spawnSync("systemd-analyze", ["verify", path], { encoding: "utf8" });
      const unknown = [...`${result.stdout}${result.stderr}`.matchAll(/Unknown key '([^']*)' in section \[Unit\]/g)].map((m) => m[1]);
      assert.equal(ourKeys(body), unknown, `case ${index}: ${JSON.stringify(body)}`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
