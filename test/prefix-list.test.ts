import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { generate, InvalidSpecError } from "../src/generate.js";
import { describeProblems, MAX_REPORTED_PROBLEMS, parsePrefixList, readPrefixList } from "../src/prefix-list.js";

const root = new URL("..", import.meta.url).pathname;

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

/** The Destination of every throw the generated files hold, in file order. */
function throwsOf(files: readonly { content: string }[]): string[] {
  return files.flatMap((f) => [...f.content.matchAll(/^Type=throw\nDestination=(\S+)$/gm)].map((m) => m[1]!));
}

test("split.exclude_files: the country example's list, merged with @local, becomes the fewest routes", async () => {
  const { files } = await generate(join(root, "examples/country/country.toml"), { outputDir: "out", prefix: "50" });
  // Worked out by hand from examples/country/home-country.txt (see its comments) plus @local: the
  // minimal cover, except that 196.200.0.0/18, /19 and /20 (three throws) are one throw for the /17
  // with 196.200.112.0/20, the /17's last sixteenth, back through the tunnel inside it.
  const tunnelRoutes = files.find((f) => f.fileName === "50-wg0.network")!.content.match(/^Destination=\S+$/gm);
  assert.equal(tunnelRoutes, ["Destination=0.0.0.0/0", "Destination=196.200.112.0/20", "Destination=::/0"]);
  assert.equal(throwsOf(files), [
    "10.0.0.0/8", "41.64.0.0/12", "41.190.1.7/32", "100.64.0.0/10", "102.128.0.0/15", "102.130.0.0/17",
    "105.16.0.0/12", "127.0.0.0/8", "154.64.0.0/14", "154.68.0.0/15", "160.88.0.0/15", "169.254.0.0/16",
    "172.16.0.0/12", "192.168.0.0/16", "196.200.0.0/17", "197.156.0.0/15",
    "197.232.0.0/14", "224.0.0.0/4", "255.255.255.255/32",
    "::1/128", "2a0b:5c40::/28", "2c0f:f000::/30", "2c0f:fb50::/32", "2c0f:fe08::/29", "fc00::/7", "fe80::/10", "ff00::/8",
  ]);
});

async function specWithLists(split: string, lists: Record<string, string | Buffer>): Promise<{ dir: string; spec: string }> {
  const dir = mkdtempSync(join(tmpdir(), "prefix-list-spec-"));
  for (const [name, content] of Object.entries(lists)) writeFileSync(join(dir, name), content);
  const spec = join(dir, "spec.toml");
  writeFileSync(spec, `version = 1\n[tunnel]\ninterface = "wg0"\naddresses = ["10.253.0.2/32"]\nmanage = false\n[split]\nipv6 = "direct"\n${split}\n`);
  return { dir, spec };
}

test("split.include_files: a list that covers most of the space is emitted in the cheaper form", async () => {
  // Everything but 198.51.100.0/24 is included: listing the captured prefixes would take 24 routes,
  // a default route plus one throw takes 2.
  const included = ["0.0.0.0/1", "128.0.0.0/2", "192.0.0.0/3", "224.0.0.0/3"].join("\n");
  const { dir, spec } = await specWithLists('exclude = ["198.51.100.0/24"]\ninclude_files = ["all.txt"]', { "all.txt": included });
  try {
    const { files } = await generate(spec, { outputDir: "out", prefix: "50" });
    assert.equal(throwsOf(files), ["198.51.100.0/24"]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the header's hash follows the lists' addresses, not their spelling", async () => {
  const hashOf = async (list: string) => {
    const { dir, spec } = await specWithLists('exclude_files = ["list.txt"]', { "list.txt": list });
    try {
      return (await generate(spec, { outputDir: "out", prefix: "50" })).plan.specHash;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  const original = await hashOf("203.0.113.0/25\n203.0.113.128/25\n");
  assert.is(await hashOf("# reordered and merged\n203.0.113.0/24\n"), original, "same addresses, same hash");
  assert.is.not(await hashOf("203.0.113.0/25\n"), original, "a list that changed changes the header");
});

test("split.exclude_files: every bad line of every list is an error naming file and line; unreadable files too", async () => {
  const { dir, spec } = await specWithLists('exclude_files = ["a.txt", "missing.txt", "b.txt.gz", "fake.gz"]', {
    "a.txt": "10.0.0.0/8\n256.0.0.0/8\n\n10.1.1.1/8\n",
    "b.txt.gz": gzipSync("# packed\n::/129\n"),
    "fake.gz": "10.0.0.0/8\n",
  });
  try {
    const error = await generate(spec, { outputDir: join(dir, "out"), prefix: "50" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.instance(error, InvalidSpecError);
    assert.equal((error as InvalidSpecError).problems, [
      { path: "split.exclude_files[0]", message: 'a.txt:2: "256.0.0.0/8" IPv4 part 256 is out of range (0-255)' },
      { path: "split.exclude_files[0]", message: 'a.txt:4: "10.1.1.1/8" has host bits set; did you mean "10.0.0.0/8"?' },
      { path: "split.exclude_files[1]", message: 'cannot read "missing.txt": no such file' },
      { path: "split.exclude_files[2]", message: 'b.txt.gz:2: "::/129" prefix length 129 is out of range for IPv6 (0-128)' },
      { path: "split.exclude_files[3]", message: 'cannot read "fake.gz": not gzip data (the name ends in .gz)' },
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
