import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describeProblems, MAX_REPORTED_PROBLEMS, parsePrefixList, readPrefixList } from "../src/prefix-list.js";

const LIST = [
  "\ufeff# a country list",
  "10.0.0.0/9   # first half",
  "10.128.0.0/9",
  "",
  "   192.0.2.1\r",
  "192.0.2.0/32",
  "2001:db8::/33\t",
  "2001:DB8:8000::/33",
  "2001:db8::1",
  "\t# indented comment",
].join("\n");

test("lists: comments, blanks, whitespace, CRLF, BOM, bare addresses, both families", () => {
  const list = parsePrefixList(LIST);
  assert.equal(list.set.cidrs(), ["10.0.0.0/8", "192.0.2.0/31", "2001:db8::/32"]);
  assert.is(list.prefixCount, 7);
  assert.equal(list.problems, []);
  assert.is(list.problemCount, 0);
});

test("lists: every bad line is counted, the first ones reported with line numbers", () => {
  const lines = ["10.0.0.0/8", "256.0.0.0/8", "10.0.0.1/8 # host bits", "010.0.0.0/8", "1.2.3.4 /32", "::/129"];
  const list = parsePrefixList(lines.join("\n"));
  assert.equal(list.problems, [
    { line: 2, text: "256.0.0.0/8", message: "IPv4 part 256 is out of range (0-255)" },
    { line: 3, text: "10.0.0.1/8", message: "has host bits set", hint: 'did you mean "10.0.0.0/8"?' },
    { line: 4, text: "010.0.0.0/8", message: "IPv4 part 010 has a leading zero (octal or decimal?)", hint: 'did you mean "10.0.0.0/8"?' },
    { line: 5, text: "1.2.3.4 /32", message: "contains whitespace" },
    { line: 6, text: "::/129", message: "prefix length 129 is out of range for IPv6 (0-128)" },
  ]);
  assert.equal(describeProblems("countries.txt", list).slice(0, 2), [
    'countries.txt:2: "256.0.0.0/8" IPv4 part 256 is out of range (0-255)',
    'countries.txt:3: "10.0.0.1/8" has host bits set; did you mean "10.0.0.0/8"?',
  ]);
});

test("lists: a flood of bad lines is capped with a count of the rest", () => {
  const list = parsePrefixList(Array.from({ length: 50 }, (_, i) => `bad${i}`).join("\n"));
  assert.is(list.problems.length, MAX_REPORTED_PROBLEMS);
  assert.is(list.problemCount, 50);
  const described = describeProblems("feed.txt", list);
  assert.is(described.length, MAX_REPORTED_PROBLEMS + 1);
  assert.is(described[0], 'feed.txt:1: "bad0" is not an IPv4 or IPv6 prefix');
  assert.is(described.at(-1), `feed.txt: ${50 - MAX_REPORTED_PROBLEMS} more bad lines not shown`);
});

test("lists: read from files, gzip by name", () => {
  const dir = mkdtempSync(join(tmpdir(), "prefix-list-"));
  try {
    writeFileSync(join(dir, "plain.txt"), LIST);
    writeFileSync(join(dir, "packed.txt.gz"), gzipSync(LIST));
    assert.equal(readPrefixList(join(dir, "packed.txt.gz")).set.cidrs(), readPrefixList(join(dir, "plain.txt")).set.cidrs());
    writeFileSync(join(dir, "fake.gz"), LIST);
    assert.throws(() => readPrefixList(join(dir, "fake.gz")), /incorrect header check/);
    assert.throws(() => readPrefixList(join(dir, "missing.txt")), /ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
