// The lab's oracle and canonical forms, checked without root: a mistake here
// would make every lab case compare the kernel with the wrong thing.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { parseUnitFile } from "../../src/unitfile.js";
import {
  canonKernelRoute,
  canonKernelRule,
  contains,
  expectedVerdict,
  firstAndLast,
  parsePrefix,
  protoName,
  routesFromNetwork,
  rulesFromNetwork,
  specView,
} from "./expect.js";

test("addresses and prefixes", () => {
  assert.is(parsePrefix("10.1.2.3/8").text, "10.0.0.0/8");
  assert.is(parsePrefix("fd7a:115c:a1e0:ab12::1/48").text, "fd7a:115c:a1e0::/48");
  assert.ok(contains(parsePrefix("172.16.0.0/12"), "172.31.255.255"));
  assert.not.ok(contains(parsePrefix("172.16.0.0/12"), "172.32.0.0"));
  assert.not.ok(contains(parsePrefix("10.0.0.0/8"), "::1"));
  assert.equal(firstAndLast(parsePrefix("224.0.0.0/4")), ["224.0.0.1", "239.255.255.255"]);
  assert.equal(firstAndLast(parsePrefix("255.255.255.255/32")), ["255.255.255.255", "255.255.255.255"]);
});

test("protocol spellings", () => {
  for (const p of ["58", 58, "icmpv6", "ipv6-icmp", "ipproto-58"]) assert.is(protoName(p), "ipv6-icmp");
  assert.is(protoName("6"), "tcp");
});

test("a .network's rules and routes read the same as the kernel's JSON", () => {
  const sections = parseUnitFile(
    [
      "[RoutingPolicyRule]", "Table=main", "SuppressPrefixLength=0", "IPProtocol=tcp", "User=995", "DestinationPort=80", "IncomingInterface=lo", "Family=ipv4", "Priority=7699",
      "[RoutingPolicyRule]", "Table=7700", "FirewallMark=10086", "Family=ipv6", "Priority=7698",
      "[Route]", "Destination=0.0.0.0/0", "Table=7700", "PreferredSource=10.77.0.2",
      "[Route]", "Type=unreachable", "Destination=::/0", "Table=7700", "Metric=4294967295",
      "[Route]", "Type=throw", "Destination=fc00::/7", "Table=7700",
    ].join("\n"),
  );
  const kernelRules = [
    { family: "ipv4", priority: 7699, src: "all", ipproto: "tcp", iif: "lo", uid_start: 995, uid_end: 995, dport: 80, table: "main", suppress_prefixlen: 0 },
    { family: "ipv6", priority: 7698, src: "all", fwmark: "0x2766", table: "7700" },
  ];
  assert.equal(rulesFromNetwork(sections), kernelRules.map(canonKernelRule).sort());
  const kernelRoutes = [
    canonKernelRoute({ dst: "default", dev: "wg0", prefsrc: "10.77.0.2", protocol: "static", scope: "link" }, "7700", "ipv4"),
    canonKernelRoute({ type: "unreachable", dst: "default", dev: "lo", metric: 4294967295 }, "7700", "ipv6"),
    canonKernelRoute({ type: "throw", dst: "fc00::/7", dev: "lo", metric: 1024 }, "7700", "ipv6"),
  ];
  assert.equal(routesFromNetwork(sections, "wg0"), kernelRoutes.sort());
});

test("the oracle follows the spec contract", () => {
  const spec = specView({
    version: 1,
    tunnel: { interface: "wg0", addresses: ["10.253.0.2/32"] },
    split: { users: [995], ports: [80, "8000-8080"], include: ["203.0.113.0/24"], exclude: ["@local", "203.0.113.9/32"] },
  });
  const v = (dst: string, extra: object = {}) => expectedVerdict(spec, { dst, proto: "tcp", why: "", ...extra }).verdict;
  assert.is(v("203.0.113.80", { uid: 995, dport: 8080 }), "tunnel");
  assert.is(v("203.0.113.80", { uid: 0, dport: 80 }), "direct");
  assert.is(v("203.0.113.80", { uid: 995, dport: 443 }), "direct");
  assert.is(v("203.0.113.9", { uid: 995, dport: 80 }), "direct"); // excluded beats included
  assert.is(v("198.51.100.80", { uid: 995, dport: 80 }), "direct"); // not included
  assert.is(v("2001:db8::1", { uid: 995, dport: 80 }), "direct"); // not included (no IPv6 in include)
  assert.is(v("10.253.0.2", { uid: 995, dport: 80 }), "direct"); // own address
});

test.run();
