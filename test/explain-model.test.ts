// The policy-routing model on hand-made rule and route sets, the readers of
// `ip -j` output, the plan's rules as networkd installs them, and flow syntax.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { CommandError } from "../src/command-error.js";
import { FlowSyntaxError, assumedHost, parseFlows, simulationState, verdictOf, type FlowRequest } from "../src/explain.js";
import { jsonArrays, routeFromIp, ruleFromIp, rulesFromText, routesFromText } from "../src/host-state.js";
import { plannedRouting } from "../src/plan-routing.js";
import { buildPlan } from "../src/plan.js";
import { formatPrefix, parseAddress, type Family } from "../src/prefix.js";
import { prefixOf } from "./prefix-of.js";
import { decide, type Decision, type Route, type RouteType, type Rule, type RuleAction, type RoutingState } from "../src/route-model.js";
import { validateSpec } from "../src/spec.js";

const MAIN = 254;
const LOCAL = 255;

function route(table: number, dst: string, type: RouteType = "unicast", extra: Partial<Route> = {}): Route {
  const p = prefixOf(dst === "default" ? "0.0.0.0/0" : dst);
  return { family: p.family, table, dst: p, type, metric: 0, origin: "host", ...extra };
}

function rule(priority: number, action: RuleAction, selectors: Partial<Rule> = {}, family: Family = 4): Rule {
  return { family, priority, action, origin: "host", ...selectors };
}

const lookup = (table: number, suppressPrefixLength?: number): RuleAction =>
  suppressPrefixLength === undefined ? { kind: "lookup", table } : { kind: "lookup", table, suppressPrefixLength };

function flow(dst: string, extra: Partial<FlowRequest> = {}): FlowRequest {
  const address = parseAddress(dst);
  if (!address.ok) throw new Error(`test data ${dst}`);
  return { family: address.value.family, dst: address.value.value, src: 0n, proto: 6, sport: 0, dport: 443, uid: 0, mark: 0, iif: "lo", forwarded: false, ...extra };
}

/** The kernel's default rules plus the blog's split: suppressed main at 10085, table 10086 at 10086. */
function blogHost(table: Route[], main: Route[] = [route(MAIN, "default", "unicast", { dev: "eth0", gateway: "192.0.2.1" })]): RoutingState {
  return {
    rules: [
      rule(0, lookup(LOCAL)),
      rule(10085, lookup(MAIN, 0), { ipproto: 6 }),
      rule(10086, lookup(10086), { ipproto: 6 }),
      rule(32766, lookup(MAIN)),
      rule(32767, lookup(253)),
    ],
    routes: [route(LOCAL, "127.0.0.0/8", "local", { dev: "lo" }), ...main, ...table],
  };
}

const tunnelTable = [route(10086, "default", "unicast", { dev: "wg0" }), route(10086, "10.0.0.0/8", "throw"), route(10086, "192.168.0.0/16", "throw")];

function summary(decision: Decision): string {
  if (decision.kind === "error") return `error ${decision.error}${decision.rule ? ` at ${decision.rule.priority}` : ""}`;
  return `${decision.rule?.priority ?? "-"} ${decision.route.type} dev ${decision.route.dev ?? "-"} table ${decision.table ?? "-"}`;
}

test("captured TCP to the internet: main's default route is suppressed, the tunnel table answers", () => {
  const decision = decide(blogHost(tunnelTable), flow("203.0.113.9"));
  assert.is(summary(decision), "10086 unicast dev wg0 table 10086");
  assert.equal(
    decision.steps.map((s) => `${s.rule.priority} ${s.outcome.kind}`),
    ["0 no-route", "10085 suppressed", "10086 route"],
  );
});

test("a connected subnet more specific than main's default stays direct through the suppress_prefixlength rule", () => {
  const main = [route(MAIN, "default", "unicast", { dev: "eth0" }), route(MAIN, "172.17.0.0/16", "unicast", { dev: "docker0" })];
  assert.is(summary(decide(blogHost(tunnelTable, main), flow("172.17.0.5"))), "10085 unicast dev docker0 table 254");
});

test("suppress_prefixlength N suppresses routes of N bits or fewer, not longer ones", () => {
  const state: RoutingState = {
    rules: [rule(1, lookup(MAIN, 8)), rule(2, lookup(7))],
    routes: [route(MAIN, "10.0.0.0/8", "unicast", { dev: "a" }), route(MAIN, "10.1.0.0/16", "unicast", { dev: "b" }), route(7, "default", "unicast", { dev: "t" })],
  };
  assert.is(summary(decide(state, flow("10.2.0.1"))), "2 unicast dev t table 7");
  assert.is(summary(decide(state, flow("10.1.0.1"))), "1 unicast dev b table 254");
});

test("a throw returns to rule evaluation: the excluded destination falls back to main", () => {
  const decision = decide(blogHost(tunnelTable), flow("10.9.8.7"));
  assert.is(summary(decision), "32766 unicast dev eth0 table 254");
  assert.equal(decision.steps.map((s) => s.outcome.kind), ["no-route", "suppressed", "throw", "route"]);
});

test("a throw ends the lookup in its table even when a shorter route there would match", () => {
  const table = [route(7, "default", "unicast", { dev: "t" }), route(7, "10.0.0.0/8", "throw")];
  const state: RoutingState = { rules: [rule(1, lookup(7)), rule(2, lookup(MAIN))], routes: [...table, route(MAIN, "default", "unicast", { dev: "eth0" })] };
  assert.is(summary(decide(state, flow("10.0.0.1"))), "2 unicast dev eth0 table 254");
});

test("no route in a table continues with the next rule; no rule at all is unreachable", () => {
  const state: RoutingState = { rules: [rule(1, lookup(7)), rule(2, lookup(8))], routes: [route(8, "198.51.100.0/24", "unicast", { dev: "x" })] };
  assert.is(summary(decide(state, flow("198.51.100.1"))), "2 unicast dev x table 8");
  assert.is(summary(decide(state, flow("203.0.113.1"))), "error no-rule");
});

test("unreachable, blackhole and prohibit routes end the lookup (no fall back to main)", () => {
  for (const type of ["unreachable", "blackhole", "prohibit"] as const) {
    const state = blogHost([route(10086, "default", type)]);
    const decision = decide(state, flow("203.0.113.9"));
    assert.is(summary(decision), `error ${type} at 10086`);
  }
});

test("longest prefix wins; among equal prefixes the lowest metric, then list order", () => {
  const state: RoutingState = {
    rules: [rule(1, lookup(7))],
    routes: [
      route(7, "0.0.0.0/0", "unicast", { dev: "wide" }),
      route(7, "198.51.100.0/24", "unicast", { dev: "high", metric: 100 }),
      route(7, "198.51.100.0/24", "unicast", { dev: "low", metric: 5 }),
      route(7, "198.51.100.0/24", "unicast", { dev: "low-second", metric: 5 }),
      route(7, "198.51.100.128/25", "unreachable"),
    ],
  };
  assert.is(summary(decide(state, flow("198.51.100.1"))), "1 unicast dev low table 7");
  assert.is(summary(decide(state, flow("198.51.100.200"))), "error unreachable at 1");
  assert.is(summary(decide(state, flow("203.0.113.1"))), "1 unicast dev wide table 7");
});

test("the kill switch: the tunnel's route (metric 0) wins over the anchor's unreachable (metric max); without it, unreachable", () => {
  const anchor = route(10086, "default", "unreachable", { metric: 4294967295 });
  assert.is(summary(decide(blogHost([anchor, route(10086, "default", "unicast", { dev: "wg0" })]), flow("203.0.113.9"))), "10086 unicast dev wg0 table 10086");
  assert.is(summary(decide(blogHost([anchor]), flow("203.0.113.9"))), "error unreachable at 10086");
});

test("selectors: ipproto, dport range, uidrange, fwmark with mask, iif, from, to", () => {
  const to7 = lookup(7);
  const cases: [Partial<Rule>, Partial<FlowRequest>, boolean][] = [
    [{ ipproto: 6 }, { proto: 17 }, false],
    [{ ipproto: 17 }, { proto: 17 }, true],
    [{ dport: { start: 80, end: 443 } }, { dport: 443 }, true],
    [{ dport: { start: 80, end: 442 } }, { dport: 443 }, false],
    [{ sport: { start: 1000, end: 2000 } }, { sport: 0 }, false],
    [{ uid: { start: 1000, end: 1000 } }, { uid: 1000 }, true],
    [{ uid: { start: 1000, end: 1000 } }, { uid: 0 }, false],
    [{ fwmark: { value: 0x10, mask: 0xff } }, { mark: 0x110 }, true],
    [{ fwmark: { value: 0x10, mask: 0xff } }, { mark: 0x11 }, false],
    [{ fwmark: { value: 0xca6c, mask: 0xffffffff } }, { mark: 0 }, false],
    [{ iif: "lo" }, {}, true],
    [{ iif: "lo" }, { iif: "eth0", forwarded: true }, false],
    [{ oif: "eth0" }, {}, false],
    [{ from: prefixOf("10.0.0.0/8") }, {}, false],
    [{ from: prefixOf("10.0.0.0/8") }, { src: prefixOf("10.1.2.3").network }, true],
    [{ to: prefixOf("203.0.113.0/24") }, {}, true],
    [{ to: prefixOf("203.0.113.0/25") }, { dst: prefixOf("203.0.113.200").network }, false],
  ];
  for (const [selectors, flowFields, matches] of cases) {
    const state: RoutingState = { rules: [rule(1, to7, selectors), rule(2, lookup(8))], routes: [route(7, "default", "unicast", { dev: "seven" }), route(8, "default", "unicast", { dev: "eight" })] };
    const decision = decide(state, flow("203.0.113.9", flowFields));
    assert.is(decision.kind === "route" && decision.route.dev, matches ? "seven" : "eight", `${JSON.stringify(selectors, (_, v) => (typeof v === "bigint" ? String(v) : v))} with ${JSON.stringify(flowFields, (_, v) => (typeof v === "bigint" ? String(v) : v))}`);
  }
});

test("not inverts the whole selector", () => {
  const state: RoutingState = {
    rules: [rule(1, lookup(7), { invert: true, ipproto: 6 }), rule(2, lookup(8))],
    routes: [route(7, "default", "unicast", { dev: "seven" }), route(8, "default", "unicast", { dev: "eight" })],
  };
  assert.is(summary(decide(state, flow("203.0.113.9", { proto: 6 }))), "2 unicast dev eight table 8");
  assert.is(summary(decide(state, flow("203.0.113.9", { proto: 17 }))), "1 unicast dev seven table 7");
});

test("goto jumps to the first rule of its priority (matched like any rule); nop and an unresolved goto continue", () => {
  const routes = [route(7, "default", "unicast", { dev: "seven" }), route(8, "default", "unicast", { dev: "eight" }), route(9, "default", "unicast", { dev: "nine" })];
  const state: RoutingState = {
    rules: [rule(1, { kind: "nop" }), rule(2, { kind: "goto", priority: 50 }, { ipproto: 6 }), rule(3, { kind: "goto", priority: 99 }), rule(10, lookup(7)), rule(50, lookup(8), { ipproto: 6 }), rule(60, lookup(9))],
    routes,
  };
  assert.is(summary(decide(state, flow("203.0.113.9", { proto: 6 }))), "50 unicast dev eight table 8");
  assert.is(summary(decide(state, flow("203.0.113.9", { proto: 17 }))), "10 unicast dev seven table 7");
  const jumped = decide(state, flow("203.0.113.9", { proto: 6 }));
  assert.equal(jumped.steps.map((s) => `${s.rule.priority} ${s.outcome.kind}`), ["1 nop", "2 goto", "50 route"]);
});

test("blackhole, unreachable and prohibit rules end the lookup", () => {
  for (const kind of ["blackhole", "unreachable", "prohibit"] as const) {
    const state: RoutingState = { rules: [rule(5, { kind }, { ipproto: 17 }), rule(6, lookup(MAIN))], routes: [route(MAIN, "default", "unicast", { dev: "eth0" })] };
    assert.is(summary(decide(state, flow("203.0.113.9", { proto: 17 }))), `error ${kind} at 5`);
    assert.is(summary(decide(state, flow("203.0.113.9", { proto: 6 }))), "6 unicast dev eth0 table 254");
  }
});

test("rules of equal priority keep their list order; families never mix", () => {
  const state: RoutingState = {
    rules: [rule(5, lookup(8)), rule(5, lookup(7)), rule(1, lookup(9), {}, 6)],
    routes: [route(7, "default", "unicast", { dev: "seven" }), route(8, "default", "unicast", { dev: "eight" }), route(9, "::/0", "unicast", { dev: "nine" })],
  };
  assert.is(summary(decide(state, flow("203.0.113.9"))), "5 unicast dev eight table 8");
  assert.is(summary(decide(state, flow("2001:db8::1"))), "1 unicast dev nine table 9");
});

test("IPv4 0.0.0.0 is this host before any rule, as the kernel answers", () => {
  assert.is(summary(decide(blogHost(tunnelTable), flow("0.0.0.0"))), "- local dev lo table -");
});

// ------------------------------------------------------------- ip -j readers

test("ip -j rule entries: selectors, actions, not, detached interfaces, numeric output (ip -N)", () => {
  const rules = rulesFromText(
    `[{"priority":0,"src":"all","table":"local"},{"priority":100,"src":"all","fwmark":"0x10","fwmask":"0xff","uid_start":1000,"uid_end":2000,"ipproto":"tcp","dport":443,"table":"7"},{"priority":101,"not":null,"src":"10.0.0.0","srclen":8,"dst":"1.2.3.0","dstlen":24,"iif":"lo","oif":"d0","oif_detached":null,"sport_start":1000,"sport_end":2000,"table":"main","suppress_prefixlen":0},{"priority":102,"src":"all","goto":200,"unresolved":null},{"priority":103,"src":"all","action":"blackhole"},{"priority":104,"src":"all","nop":null},{"priority":109,"src":"all","ipproto":"ipproto-200","table":"8"},{"priority":5250,"src":"all","fwmark":"0x80000","fwmask":"0xff0000","action":"7"}]
[{"priority":0,"src":"all","table":"255"},{"priority":5,"src":"all","ipproto":"ipproto-6","table":"52"}]`,
    "rules.json",
  );
  const json = (value: unknown) => JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v));
  assert.is(rules.length, 10);
  assert.equal(rules[1], { family: 4, priority: 100, action: { kind: "lookup", table: 7 }, origin: "host", fwmark: { value: 16, mask: 255 }, uid: { start: 1000, end: 2000 }, ipproto: 6, dport: { start: 443, end: 443 } });
  assert.is(json(rules[2]), json({ family: 4, priority: 101, action: { kind: "lookup", table: 254, suppressPrefixLength: 0 }, origin: "host", invert: true, from: prefixOf("10.0.0.0/8"), to: prefixOf("1.2.3.0/24"), iif: "lo", oif: "d0 (detached)", sport: { start: 1000, end: 2000 } }));
  assert.equal(rules.slice(3, 7).map((r) => r.action), [{ kind: "goto", priority: 200 }, { kind: "blackhole" }, { kind: "nop" }, { kind: "lookup", table: 8 }]);
  assert.is(rules[6]!.ipproto, 200);
  assert.equal(rules[7]!.action, { kind: "unreachable" }, "ip -N prints actions as numbers");
  assert.equal(rules.slice(8).map((r) => [r.family, r.priority, r.ipproto]), [[6, 0, undefined], [6, 5, 6]]);
});

test("ip -j route entries: types by name and number, default, host routes, metrics, family from the entry", () => {
  const routes = routesFromText(
    `[{"dst":"default","gateway":"192.168.7.1","dev":"d0","flags":[]},{"type":"9","dst":"10.0.0.0/8","table":"7","flags":[]},{"type":"local","dst":"127.0.0.1","dev":"lo","table":"local","protocol":"kernel","scope":"host","prefsrc":"127.0.0.1","flags":[]},{"type":"unreachable","dst":"default","dev":"lo","table":"7","metric":1024,"flags":[],"pref":"medium"},{"dst":"10.9.0.0/16","dev":"d1","flags":["dead","linkdown"]},{"dst":"198.51.100.0/24","flags":[],"nexthops":[{"gateway":"192.0.2.1","dev":"eth0","weight":1,"flags":[]},{"gateway":"192.0.2.2","dev":"eth1","weight":1,"flags":[]}]}]`,
    "routes.json",
  );
  assert.equal(
    routes.map((r) => [r.family, r.table, r.type, r.dst.length, r.dev ?? null, r.metric]),
    [[4, 254, "unicast", 0, "d0", 0], [4, 7, "throw", 8, null, 0], [4, 255, "local", 32, "lo", 0], [6, 7, "unreachable", 0, "lo", 1024], [4, 254, "unicast", 24, "multipath(eth0,eth1)", 0]],
  );
});

test("unreadable host state is an error naming the file and the entry", () => {
  assert.throws(() => rulesFromText("not json", "rules.json"), (e: Error) => e instanceof CommandError && e.message.startsWith("rules.json: expected the JSON arrays"));
  assert.throws(() => ruleFromIp({ priority: 5, table: "vpn" }, 4, "rules.json"), (e: Error) => /rules\.json: rule .*: table "vpn" is a name from this machine's rt_tables; dump numeric tables instead: ip -N -j rule/.test(e.message));
  assert.throws(() => routeFromIp({ type: "nat", dst: "1.2.3.4" }, "routes.json"), /routes\.json: route .*: type "nat" is not modelled/);
});

// ------------------------------------------------- the plan as networkd installs it

function seedPlan(split: Record<string, unknown> = {}) {
  const validated = validateSpec({
    version: 1,
    tunnel: { interface: "wg0", addresses: ["10.253.0.2/32"], private_key_file: "/etc/systemd/network/wg0.key", peers: [{ public_key: "4kQT3smJgD94joC+o+whDz6zEdg42kZIryzw0Rw2w24=", endpoint: "198.51.100.7:51820", allowed_ips: ["0.0.0.0/0"] }] },
    split,
  });
  if (!validated.ok) throw new Error(JSON.stringify(validated.problems));
  return buildPlan(validated.spec, { prefix: "50" });
}

test("the seed plan's rules and routes as the kernel will hold them", () => {
  const planned = plannedRouting(seedPlan());
  const text = (r: Rule) => `${r.family} ${r.priority} ${r.from ? formatPrefix(r.from) : "all"} ${r.iif ?? "-"} ${r.ipproto ?? "-"} ${JSON.stringify(r.action)}`;
  assert.equal(planned.rules.map(text), [
    `4 10085 all - 6 {"kind":"lookup","table":254,"suppressPrefixLength":0}`,
    `4 10086 0.0.0.0/32 - 6 {"kind":"lookup","table":10086}`,
    `4 10086 10.253.0.2/32 - 6 {"kind":"lookup","table":10086}`,
    `4 10088 all lo 6 {"kind":"lookup","table":254}`,
    `4 10089 all - 6 {"kind":"lookup","table":10086}`,
    `6 10085 all - 6 {"kind":"lookup","table":254,"suppressPrefixLength":0}`,
    `6 10088 ::/1 lo 6 {"kind":"lookup","table":254}`,
    `6 10088 8000::/1 lo 6 {"kind":"lookup","table":254}`,
    `6 10089 all - 6 {"kind":"lookup","table":10086}`,
  ]);
  assert.ok(planned.routes.some((r) => r.family === 6 && r.type === "unreachable" && r.dst.length === 0 && r.table === 10086), "IPv6 is blocked in the table");
  assert.ok(planned.routes.some((r) => r.family === 4 && r.type === "unicast" && r.dev === "wg0" && r.dst.length === 0), "IPv4 default through wg0");
  assert.equal(planned.addressRoutes.map((r) => [r.table, r.type, r.dev]), [[255, "local", "wg0"]]);
});

test("explain of the seed plan on an assumed host: verdicts, and which rest on the assumed main table", () => {
  const state = simulationState(plannedRouting(seedPlan()), assumedHost());
  const verdict = (f: FlowRequest) => verdictOf(decide(state, f), f, "wg0", true);
  const tcp = verdict(flow("203.0.113.9"));
  assert.equal([tcp.verdict, tcp.interface, tcp.table, tcp.rule_priority], ["tunnel", "wg0", "10086", 10086]);
  assert.equal(tcp.assumes.length, 1, "the suppressed main lookup rests on the assumption");
  const udp = verdict(flow("203.0.113.9", { proto: 17 }));
  assert.equal([udp.verdict, udp.table, udp.rule_priority], ["direct", "main", 32766]);
  const v6 = verdict(flow("2001:db8::1"));
  assert.equal([v6.verdict, v6.table, v6.route], ["unreachable", "10086", "unreachable default"]);
  const own = verdict(flow("10.253.0.2"));
  assert.equal([own.verdict, own.interface, own.assumes], ["direct", "lo", []]);
});

test("source selectors: IPv4 compares a lookup without a source with 0.0.0.0, IPv6 never matches it with a source prefix", () => {
  const from = (text: string) => ({ from: prefixOf(text) });
  const v4: RoutingState = { rules: [rule(1, lookup(7), from("0.0.0.0/32")), rule(2, lookup(8), from("0.0.0.0/1"))], routes: [route(7, "default"), route(8, "default")] };
  const v6: RoutingState = {
    rules: [rule(1, lookup(7), from("::/128"), 6), rule(2, lookup(8), from("::/1"), 6), rule(3, lookup(9), from("::/0"), 6)],
    routes: [route(7, "::/0"), route(8, "::/0"), route(9, "::/0")],
  };
  const table = (state: RoutingState, f: FlowRequest) => decide(state, f).table;
  assert.is(table(v4, flow("203.0.113.9")), 7);
  assert.is(table(v4, flow("203.0.113.9", { src: 0x0a000001n })), 8);
  assert.is(table(v6, flow("2001:db8::1")), 9, "neither ::/128 nor ::/1 matches a lookup without a source; ::/0 is no selector at all");
  assert.is(table(v6, flow("2001:db8::1", { src: 1n })), 8);
});

test("IPv4 multicast and limited broadcast from a bound source leave through the source's link, before any rule", () => {
  const state: RoutingState = {
    rules: [rule(0, lookup(LOCAL)), rule(10, lookup(7)), rule(32766, lookup(MAIN))],
    routes: [route(LOCAL, "10.253.0.2", "local", { dev: "wg0" }), route(LOCAL, "192.168.50.2", "local", { dev: "lan0" }), route(7, "default", "unicast", { dev: "wg9" })],
  };
  const dev = (f: FlowRequest) => {
    const d = decide(state, f);
    return d.kind === "route" ? `${d.route.type} ${d.route.dev} ${d.steps.length}` : d.error;
  };
  assert.is(dev(flow("224.0.0.1", { proto: 17, src: 0x0afd0002n })), "multicast wg0 0");
  assert.is(dev(flow("255.255.255.255", { proto: 17, src: 0xc0a83202n })), "broadcast lan0 0");
  assert.is(dev(flow("224.0.0.1", { proto: 17 })), "unicast wg9 2", "unbound: the rules decide");
  assert.is(dev(flow("224.0.0.1", { proto: 17, src: 0xc0a83202n, iif: "eth0", forwarded: true })), "unicast wg9 2", "forwarded: the rules decide");
});

test("inbound = direct on the seed plan: a reply from the LAN address stays direct; the tunnel's address and forwarded traffic are captured", () => {
  const state = simulationState(plannedRouting(seedPlan()), assumedHost());
  const verdict = (f: FlowRequest) => {
    const v = verdictOf(decide(state, f), f, "wg0", true);
    return `${v.verdict} ${v.table} ${v.rule_priority}`;
  };
  const src = (text: string) => {
    const parsed = parseAddress(text);
    if (!parsed.ok) throw new Error(`test data ${text}`);
    return parsed.value.value;
  };
  assert.is(verdict(flow("203.0.113.200", { sport: 22, dport: 51234, src: src("192.0.2.2") })), "direct main 10088", "the SSH server's reply leaves where the connection came in");
  assert.is(verdict(flow("203.0.113.200", { src: src("10.253.0.2") })), "tunnel 10086 10086", "the second lookup of a connect, from the tunnel's address");
  assert.is(verdict(flow("203.0.113.200", { src: src("172.17.0.2"), iif: "docker0", forwarded: true })), "tunnel 10086 10089", "a container's traffic");
  const v6 = (f: FlowRequest) => verdictOf(decide(state, f), f, "wg0", true).verdict;
  assert.is(v6(flow("2001:db8::1", { sport: 22, src: src("2001:db8:50::2") })), "direct", "a reply of the SSH server over blocked IPv6 (it has a source port) leaves where the connection came in");
  assert.is(v6(flow("2001:db8::1", { src: src("2001:db8:50::2") })), "unreachable", "the kernel's retry of a refused connect from a LAN source (no port yet) stays blocked");
  assert.is(v6(flow("2001:db8::1", { sport: 22, src: src("2001:db8:50::2"), iif: "docker0", forwarded: true })), "unreachable", "forwarded IPv6 stays blocked");
  const capture = simulationState(plannedRouting(seedPlan({ inbound: "capture" })), assumedHost());
  assert.is(verdictOf(decide(capture, flow("203.0.113.200", { sport: 22, src: src("192.0.2.2") })), flow("203.0.113.200"), "wg0", true).verdict, "tunnel", 'inbound = "capture" keeps the old behaviour');
});

test("ip -j output: one array per command, compact or pretty-printed, brackets and quotes inside strings; anything else refused", () => {
  const text = '[{"dst":"10.0.0.0/8","flags":[]},{"dst":"x]\\"[{"}]\n[\n  {\n    "flags": [ "onlink" ]\n  }\n]\n\n[]';
  assert.equal(jsonArrays(text, "t"), [[{ dst: "10.0.0.0/8", flags: [] }, { dst: 'x]"[{' }], [{ flags: ["onlink"] }], []]);
  assert.equal(jsonArrays("  \n", "t"), []);
  for (const bad of ['{"a":1}', "[1] x", "[1", "[1]]", '["open]', "warning: x\n[]"]) {
    assert.throws(() => jsonArrays(bad, "t"), (e: Error) => e instanceof CommandError && e.message === "t: expected the JSON arrays that `ip -j` prints", bad);
  }
});

test("verdicts: answers delivered to this host (local, anycast, an arriving broadcast) are direct via lo", () => {
  const state: RoutingState = {
    rules: [rule(0, lookup(LOCAL)), rule(1, lookup(7)), rule(0, lookup(LOCAL), {}, 6)],
    routes: [
      route(LOCAL, "192.168.1.255", "broadcast", { dev: "eth0" }),
      route(LOCAL, "10.253.0.2", "local", { dev: "wg0" }),
      route(LOCAL, "2001:db8:50::/128", "anycast", { dev: "eth0", metric: 0 }),
      route(7, "default", "unicast", { dev: "wg0" }),
    ],
  };
  const verdict = (f: FlowRequest) => {
    const v = verdictOf(decide(state, f), f, "wg0", false);
    return `${v.verdict} ${v.interface} ${v.table}`;
  };
  assert.is(verdict(flow("192.168.1.255")), "direct eth0 local", "a local broadcast leaves on its link");
  assert.is(verdict(flow("192.168.1.255", { iif: "eth0", forwarded: true })), "direct lo local", "an arriving broadcast is delivered here");
  assert.is(verdict(flow("10.253.0.2")), "direct lo local");
  assert.is(verdict(flow("2001:db8:50::")), "direct lo local");
  assert.is(verdict(flow("203.0.113.9")), "tunnel wg0 7");
});

// ------------------------------------------------------------------ flow syntax

test("flows: address, proto:address:port, bracketed IPv6, refinements; a bare address is one flow per protocol", () => {
  const flows = parseFlows(["203.0.113.9", "tcp:203.0.113.9:443", "udp:[2001:db8::1]:53", "uid=1000", "icmp:2001:db8::2 forwarded", "tcp:198.51.100.1 mark=0x10 sport=1234 from=10.0.0.1"], [6, 17]);
  assert.equal(
    flows.map((f) => [f.family, f.proto, f.dport, f.uid, f.mark, f.sport, f.iif, f.forwarded]),
    [
      [4, 6, 0, 0, 0, 0, "lo", false],
      [4, 17, 0, 0, 0, 0, "lo", false],
      [4, 6, 443, 0, 0, 0, "lo", false],
      [6, 17, 53, 1000, 0, 0, "lo", false],
      [6, 58, 0, 0, 0, 0, "(any interface)", true],
      [4, 6, 0, 0, 16, 1234, "lo", false],
    ],
  );
  assert.is(flows[5]!.src, prefixOf("10.0.0.1").network);
});

test("bad flows: one error naming the word and how to write flows", () => {
  const cases: [string[], RegExp][] = [
    [["uid=5"], /flow "uid=5": refines a flow, so it must follow one/],
    [["tcp:203.0.113.9:99999"], /port "99999" is not 0\.\.65535/],
    [["203.0.113.9:80"], /a port needs a protocol with ports first/],
    [["tcp:example.com:80"], /"example\.com" is not an IPv4 or IPv6 address/],
    [["icmp:203.0.113.9:80"], /a port needs a protocol with ports first/],
    [["203.0.113.9", "uid=-1"], /uid must be a number/],
    [["203.0.113.9", "from=::1"], /"::1" is not an IPv4 address/],
  ];
  for (const [words, message] of cases) {
    assert.throws(() => parseFlows(words, [6]), (e: Error) => e instanceof FlowSyntaxError && message.test(e.message) && /write flows like/.test(e.message), words.join(" "));
  }
});

test.run();
