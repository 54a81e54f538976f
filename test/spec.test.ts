// Bad specs: each case names the exact JSON path and message a user sees.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { validateSpec } from "../src/spec.js";

const KEY = "4kQT3smJgD94joC+o+whDz6zEdg42kZIryzw0Rw2w24=";

function base(): any {
  return {
    version: 1,
    tunnel: {
      interface: "wg0",
      addresses: ["10.253.0.2/32"],
      private_key_file: "/etc/systemd/network/wg0.key",
      listen_port: 51820,
      peers: [{ public_key: KEY, endpoint: "198.51.100.7:51820", allowed_ips: ["0.0.0.0/0", "::/0"], persistent_keepalive: 25 }],
    },
    split: { table: 10086, priority: 10086, protocols: ["tcp"], exclude: ["@local"] },
  };
}

const problemsOf = (spec: unknown) => {
  const result = validateSpec(spec);
  return result.ok ? [] : result.problems.map((p) => `${p.path}: ${p.message}`);
};

test("the base spec is valid and gets its defaults", () => {
  const result = validateSpec(base());
  assert.ok(result.ok);
  if (!result.ok) return;
  assert.is(result.spec.tunnel.manage, true);
  assert.is(result.spec.split.direct_connected, true);
  assert.is(result.spec.split.ipv6, undefined); // chosen by the planner from the addresses
});

test("split may be omitted entirely", () => {
  const spec = base();
  delete spec.split;
  const result = validateSpec(spec);
  assert.ok(result.ok);
  if (result.ok) assert.equal([result.spec.split.table, result.spec.split.priority, result.spec.split.exclude], [10086, 10086, ["@local"]]);
});

test("values come out canonical", () => {
  const spec = base();
  spec.split.exclude = ["2001:DB8:0:0::/32", "10.0.0.0/8"];
  spec.tunnel.addresses = ["10.253.0.2/32", "FD00:0:0::2/128"];
  const result = validateSpec(spec);
  assert.ok(result.ok);
  if (!result.ok) return;
  assert.equal(result.spec.split.exclude, ["2001:db8::/32", "10.0.0.0/8"]);
  assert.equal(result.spec.tunnel.addresses, ["10.253.0.2/32", "fd00::2/128"]);
});

type Case = [name: string, mutate: (spec: any) => void, expected: string | string[]];
const cases: Case[] = [
  ["host bits", (s) => (s.split.exclude = ["@local", "@rfc1918", "10.0.0.1/8"]), 'split.exclude[2]: "10.0.0.1/8" has host bits set; did you mean "10.0.0.0/8"?'],
  ["IPv4 /33", (s) => (s.split.exclude = ["10.0.0.0/33"]), 'split.exclude[0]: "10.0.0.0/33" prefix length 33 is out of range for IPv4 (0-32)'],
  ["IPv6 /129", (s) => (s.split.exclude = ["fc00::/129"]), 'split.exclude[0]: "fc00::/129" prefix length 129 is out of range for IPv6 (0-128)'],
  ["missing length", (s) => (s.split.exclude = ["10.0.0.0"]), 'split.exclude[0]: "10.0.0.0" has no prefix length; did you mean "10.0.0.0/32" (a single address)?'],
  ["empty prefix", (s) => (s.split.exclude = [""]), 'split.exclude[0]: "" is empty'],
  ["three octets", (s) => (s.split.exclude = ["10.0.0/8"]), 'split.exclude[0]: "10.0.0/8" is not an IPv4 address (expected 4 decimal parts separated by dots)'],
  ["octet > 255", (s) => (s.split.exclude = ["256.0.0.0/8"]), 'split.exclude[0]: "256.0.0.0/8" IPv4 part 256 is out of range (0-255)'],
  ["leading zero", (s) => (s.split.exclude = ["010.0.0.0/8"]), 'split.exclude[0]: "010.0.0.0/8" IPv4 part 010 has a leading zero (octal or decimal?); did you mean "10.0.0.0/8"?'],
  ["double ::", (s) => (s.split.exclude = ["1::2::3/64"]), 'split.exclude[0]: "1::2::3/64" is not an IPv6 address ("::" may appear only once)'],
  ["unknown named set", (s) => (s.split.exclude = ["@rfc1819"]), 'split.exclude[0]: "@rfc1819" is not a named set; did you mean "@rfc1918"? (known: @rfc1918, @ula, @cgnat, @tailscale, @link-local, @loopback, @multicast, @broadcast, @local)'],
  ["bad allowed_ips", (s) => (s.tunnel.peers[0].allowed_ips = ["0.0.0.0/0", "::/0", "10.1.2.3/16"]), 'tunnel.peers[0].allowed_ips[2]: "10.1.2.3/16" has host bits set; did you mean "10.1.0.0/16"?'],
  ["tunnel address without length", (s) => (s.tunnel.addresses = ["10.253.0.2"]), 'tunnel.addresses[0]: "10.253.0.2" has no prefix length; write e.g. "10.253.0.2/32" (or /128 for IPv6)'],
  ["killswitch_before without the kill switch", (s) => (s.split.killswitch_before = ["NetworkManager.service"]), "split.killswitch_before: only applies with killswitch = true (without it, traffic goes direct whenever the tunnel is not up, by design)"],
  ["killswitch_before without .service", (s) => ((s.split.killswitch = true), (s.split.killswitch_before = ["NetworkManager"])), 'split.killswitch_before[0]: "NetworkManager" is not a service unit name; write "NetworkManager.service"'],
  ["killswitch_before naming networkd", (s) => ((s.split.killswitch = true), (s.split.killswitch_before = ["systemd-networkd.service"])), 'split.killswitch_before[0]: "systemd-networkd.service" is networkd itself, which configures the anchor: ordering it after the anchor is a cycle'],
  ["killswitch_before with a path", (s) => ((s.split.killswitch = true), (s.split.killswitch_before = ["../x.service"])), 'split.killswitch_before[0]: "../x.service" is not a unit name systemd accepts (letters, digits, ":_.\\-", one "@instance")'],
  ["killswitch_before twice", (s) => ((s.split.killswitch = true), (s.split.killswitch_before = ["NetworkManager.service", "NetworkManager.service"])), 'split.killswitch_before[1]: duplicate: "NetworkManager.service" is also split.killswitch_before[0]'],
  ["killswitch_before empty", (s) => ((s.split.killswitch = true), (s.split.killswitch_before = [])), 'split.killswitch_before: list at least one service, e.g. ["NetworkManager.service"], or omit the key'],
  ["tunnel address /40", (s) => (s.tunnel.addresses = ["10.253.0.2/40"]), 'tunnel.addresses[0]: "10.253.0.2/40" has prefix length "40"; expected 0..32'],
  ["no tunnel address", (s) => (s.tunnel.addresses = []), 'tunnel.addresses: list at least one tunnel address, e.g. ["10.253.0.2/32"]'],
  ["IPv6-only tunnel", (s) => (s.tunnel.addresses = ["fd00::2/128"]), "tunnel.addresses: needs an IPv4 address: IPv4 traffic is what the tunnel carries"],
  ["interface too long", (s) => (s.tunnel.interface = "wireguard-tunnel0"), 'tunnel.interface: "wireguard-tunnel0" is 17 bytes long; Linux interface names have at most 15'],
  ["interface with slash", (s) => (s.tunnel.interface = "wg/0"), "tunnel.interface: \"wg/0\" contains '/', ':' or whitespace, which Linux interface names cannot"],
  ["interface with a glob", (s) => (s.tunnel.interface = "wg*"), `tunnel.interface: "wg*" contains "*"; use letters, digits, '-', '_' and '.' (networkd reads [Match] Name= as a list of glob patterns)`],
  ["anchor with a quote", (s) => (s.split.anchor = 'wg"x'), `split.anchor: "wg\\"x" contains "\\""; use letters, digits, '-', '_' and '.' (networkd reads [Match] Name= as a list of glob patterns)`],
  ["interface ..", (s) => (s.tunnel.interface = ".."), 'tunnel.interface: ".." is not a valid interface name'],
  ["interface empty", (s) => (s.tunnel.interface = ""), "tunnel.interface: interface name is empty"],
  ["interface with newline", (s) => (s.tunnel.interface = "wg0\n[Match]"), 'tunnel.interface: "wg0\\n[Match]" contains a newline; values are written into INI files, where that would inject lines or show a different value'],
  ["endpoint with newline", (s) => (s.tunnel.peers[0].endpoint = "198.51.100.7:51820\nPublicKey=x"), 'tunnel.peers[0].endpoint: "198.51.100.7:51820\\nPublicKey=x" contains a newline; values are written into INI files, where that would inject lines or show a different value'],
  ["key path with tab", (s) => (s.tunnel.private_key_file = "/etc/wg\t.key"), 'tunnel.private_key_file: "/etc/wg\\t.key" contains control character U+0009; values are written into INI files, where that would inject lines or show a different value'],
  ["short public key", (s) => (s.tunnel.peers[0].public_key = "abc="), 'tunnel.peers[0].public_key: "abc=" is not a WireGuard public key (32 bytes in base64: 44 characters ending in "="); copy it from `wg pubkey`'],
  ["public key not base64", (s) => (s.tunnel.peers[0].public_key = "!".repeat(43) + "="), `tunnel.peers[0].public_key: "${"!".repeat(43)}=" is not a WireGuard public key (32 bytes in base64: 44 characters ending in "="); copy it from \`wg pubkey\``],
  ["inline private key", (s) => (s.tunnel.private_key = KEY), "tunnel.private_key: inline keys are refused (they would be copied into generated files); write the key to a file readable by systemd-network and set tunnel.private_key_file"],
  ["inline preshared key", (s) => (s.tunnel.peers[0].preshared_key = KEY), "tunnel.peers[0].preshared_key: inline keys are refused (they would be copied into generated files); write the key to a file readable by systemd-network and set tunnel.peers[0].preshared_key_file"],
  ["missing key file", (s) => delete s.tunnel.private_key_file, "tunnel.private_key_file: is required when manage = true (networkd creates the interface and needs its key)"],
  ["relative key file", (s) => (s.tunnel.private_key_file = "wg0.key"), 'tunnel.private_key_file: "wg0.key" is not an absolute path; networkd needs one, e.g. "/etc/systemd/network/wg0.key"'],
  ["duplicate peers", (s) => s.tunnel.peers.push({ ...s.tunnel.peers[0] }), "tunnel.peers[1].public_key: duplicate peer: same public key as tunnel.peers[0]"],
  ["no peers", (s) => (s.tunnel.peers = []), "tunnel.peers: list at least one peer when manage = true"],
  ["peers with manage = false", (s) => ((s.tunnel.manage = false), delete s.tunnel.private_key_file, delete s.tunnel.listen_port), "tunnel.peers: only applies with manage = true (gen-networkd then creates the WireGuard interface)"],
  ["endpoint without port", (s) => (s.tunnel.peers[0].endpoint = "198.51.100.7"), 'tunnel.peers[0].endpoint: "198.51.100.7" is not an endpoint; expected host:port, [IPv6]:port or hostname:port, e.g. "198.51.100.7:51820"'],
  ["endpoint port 0", (s) => (s.tunnel.peers[0].endpoint = "198.51.100.7:0"), 'tunnel.peers[0].endpoint: "198.51.100.7:0" has port "0"; expected 1..65535'],
  ["endpoint port 70000", (s) => (s.tunnel.peers[0].endpoint = "vpn.example.com:70000"), 'tunnel.peers[0].endpoint: "vpn.example.com:70000" has port "70000"; expected 1..65535'],
  ["endpoint bare IPv6", (s) => (s.tunnel.peers[0].endpoint = "2001:db8::1:51820"), 'tunnel.peers[0].endpoint: "2001:db8::1:51820" is not an endpoint; put an IPv6 address in brackets, e.g. "[2001:db8::1]:51820"'],
  ["endpoint bad IPv4", (s) => (s.tunnel.peers[0].endpoint = "198.51.100.300:51820"), 'tunnel.peers[0].endpoint: "198.51.100.300:51820": "198.51.100.300" IPv4 part 300 is out of range (0-255)'],
  ["endpoint bad hostname", (s) => (s.tunnel.peers[0].endpoint = "vpn_host!:51820"), 'tunnel.peers[0].endpoint: "vpn_host!:51820": "vpn_host!" is not a valid hostname; expected host:port, [IPv6]:port or hostname:port, e.g. "198.51.100.7:51820"'],
  ["listen port 0", (s) => (s.tunnel.listen_port = 0), "tunnel.listen_port: 0 is out of range for a UDP port: 1..65535"],
  ["listen port string", (s) => (s.tunnel.listen_port = "51820"), 'tunnel.listen_port: expected a number, got "51820"'],
  ["keepalive 0", (s) => (s.tunnel.peers[0].persistent_keepalive = 0), "tunnel.peers[0].persistent_keepalive: 0 is out of range for seconds between keepalives; omit the key to disable: 1..65535"],
  ["main table", (s) => (s.split.table = 254), 'split.table: 254 is the kernel\'s "main" table; pick another, e.g. 10086'],
  ["local table", (s) => (s.split.table = 255), 'split.table: 255 is the kernel\'s "local" table; pick another, e.g. 10086'],
  ["table 0", (s) => (s.split.table = 0), "split.table: 0 is out of range for a routing table: 1..4294967295"],
  ["table too big", (s) => (s.split.table = 4294967296), "split.table: 4294967296 is out of range for a routing table: 1..4294967295"],
  ["priority of main", (s) => (s.split.priority = 32766), "split.priority: 32766 is out of range for a rule priority (before main at 32766): 3..32765"],
  ["priority among tailscale's", (s) => (s.split.priority = 5250), "split.priority: 5250 collides with tailscale's rules (5210..5270; ours use 5248..5253); pick one above 5272, e.g. 10086"],
  ["priority without room for the inbound rules", (s) => (s.split.priority = 32765), 'split.priority: 32765 leaves no room before main (32766) for the rules after it (ours use 32763..32768 with inbound = "direct"); pick one up to 32762'],
  ["inbound unknown", (s) => (s.split.inbound = "reply"), 'split.inbound: "reply" is not an inbound policy; expected "direct" (replies leave through the link their connection came in on) or "capture" (replies are captured like any other traffic)'],
  ["priority fractional", (s) => (s.split.priority = 100.5), "split.priority: expected a whole number (a rule priority (before main at 32766))"],
  ["unsupported protocol", (s) => (s.split.protocols = ["tcp", "quic"]), 'split.protocols[1]: "quic" is not a supported protocol (supported: tcp, udp, icmp, ipv6-icmp, sctp, all, or a protocol number)'],
  ["bad ipv6 policy", (s) => (s.split.ipv6 = "tunel"), 'split.ipv6: "tunel" is not an IPv6 policy; expected "tunnel", "block" or "direct"'],
  ["ipv6 tunnel without v6 address", (s) => (s.split.ipv6 = "tunnel"), 'split.ipv6: "tunnel" needs an IPv6 address in tunnel.addresses; add one, or use "block" or "direct"'],
  ["typo in key", (s) => ((s.tunnel.adresses = s.tunnel.addresses), delete s.tunnel.addresses), ["tunnel.addresses: is required (expected an array)", 'tunnel.adresses: unknown key; did you mean "addresses"? (known here: interface, addresses, manage, private_key_file, listen_port, mtu, peers, endpoints, dns, dns_domains)']],
  ["typo in split key", (s) => (s.split.exlude = []), 'split.exlude: unknown key; did you mean "exclude"? (known here: table, priority, protocols, include, exclude, include_files, exclude_files, sources, users, ports, killswitch, killswitch_before, fwmark, anchor, ipv6, direct_connected, inbound)'],
  ["unknown peer key", (s) => (s.tunnel.peers[0].keepalive = 25), 'tunnel.peers[0].keepalive: unknown key; did you mean "persistent_keepalive"? (known here: public_key, endpoint, allowed_ips, persistent_keepalive, preshared_key_file)'],
  ["wrong version", (s) => (s.version = 2), "version: 2 is not a spec version this gen-networkd reads; expected 1"],
  ["missing tunnel", (s) => delete s.tunnel, "tunnel: is required (expected a table/object)"],
  ["boolean as string", (s) => (s.split.direct_connected = "yes"), 'split.direct_connected: expected a boolean, got "yes"'],
  ["mtu too small", (s) => (s.tunnel.mtu = 576), "tunnel.mtu: 576 is out of range for the MTU (WireGuard over IPv6 needs at least 1280): 1280..65535"],
  // Leak-proofing keys.
  ["protocol typo", (s) => (s.split.protocols = ["tcp", "udb"]), 'split.protocols[1]: "udb" is not a supported protocol; did you mean "udp"? (supported: tcp, udp, icmp, ipv6-icmp, sctp, all, or a protocol number)'],
  ["protocol number too big", (s) => (s.split.protocols = [300]), "split.protocols[0]: 300 is not an IP protocol number (1..255)"],
  ["protocol 0 (any, to a rule)", (s) => (s.split.protocols = [0]), 'split.protocols[0]: 0 matches every protocol in a routing rule (networkd and the kernel read it as "any"); write "all" to capture everything'],
  ["all with others", (s) => (s.split.protocols = ["all", "tcp"]), 'split.protocols: "all" already captures every protocol; list it alone'],
  ["ports with icmp", (s) => ((s.split.protocols = ["tcp", "icmp"]), (s.split.ports = [443])), 'split.ports: ports only narrow tcp, udp and sctp; split.protocols also has "icmp"'],
  ["port out of range", (s) => (s.split.ports = [443, 70000]), 'split.ports[1]: 70000 is out of range for a port: 1..65535'],
  ["port range reversed", (s) => (s.split.ports = ["9000-8000"]), 'split.ports[0]: "9000-8000" is an empty range; write the lower bound first'],
  ["port range garbage", (s) => (s.split.ports = ["80,443"]), 'split.ports[0]: "80,443" is not a port or a range of them ("A-B")'],
  ["uid negative", (s) => (s.split.users = [-1]), 'split.users[0]: -1 is out of range for a uid: 0..4294967294'],
  ["uid too big", (s) => (s.split.users = ["1000-4294967295"]), 'split.users[0]: "1000-4294967295" is out of range for a uid: 0..4294967294'],
  ["empty users", (s) => (s.split.users = []), "split.users: list at least one uid, or omit the key to capture every user"],
  ["bad sources", (s) => (s.split.sources = "host"), 'split.sources: "host" is not a source selection; expected "all" (also forwarded traffic) or "local" (this host\'s own)'],
  ["fwmark clashes with tailscale", (s) => ((s.split.protocols = ["tcp", "udp"]), (s.split.fwmark = 0x80000)), "split.fwmark: the tunnel's firewall mark 0x80000 (split.fwmark) has bits under tailscale's mask 0xff0000 and would be taken for tailscale's own traffic; set split.fwmark to a value below 0x10000, e.g. 51820"],
  ["table as fwmark clashes", (s) => ((s.split.protocols = ["all"]), (s.split.table = 0x10000)), "split.table: the tunnel's firewall mark 0x10000 (the table number, by default) has bits under tailscale's mask 0xff0000 and would be taken for tailscale's own traffic; set split.fwmark to a value below 0x10000, e.g. 51820"],
  ["fwmark without UDP", (s) => (s.split.fwmark = 51820), 'split.fwmark: only used when split.protocols captures UDP (or "all"); remove it'],
  ["unmanaged UDP without endpoints", (s) => ((s.tunnel.manage = false), delete s.tunnel.private_key_file, delete s.tunnel.listen_port, delete s.tunnel.peers, (s.split.protocols = ["udp"])), "tunnel.endpoints: split.protocols captures UDP, which would send the tunnel's own encrypted packets into the tunnel; with manage = false gen-networkd cannot mark them, so list the peers' endpoint addresses here (they are then kept direct)"],
  ["endpoints with a managed tunnel", (s) => (s.tunnel.endpoints = ["192.0.2.1"]), "tunnel.endpoints: only applies with manage = false (a managed tunnel marks its own packets instead)"],
  ["bad endpoint address", (s) => ((s.tunnel.manage = false), delete s.tunnel.private_key_file, delete s.tunnel.listen_port, delete s.tunnel.peers, (s.tunnel.endpoints = ["192.0.2.1:51820"])), 'tunnel.endpoints[0]: "192.0.2.1:51820" has a port; list only the address, e.g. "192.0.2.1" (every port of the peer is kept direct)'],
  ["anchor too long by default", (s) => (s.tunnel.interface = "wg-provider-01"), 'split.anchor: the default anchor name "wg-provider-01-split" is longer than 15 bytes; set split.anchor to an interface name of your choice'],
  ["dns: not an address", (s) => (s.tunnel.dns = ["10.253.0.1:53"]), 'tunnel.dns[0]: "10.253.0.1:53" is not an IPv6 address (group "10.253.0.1" is not 1-4 hex digits); list the resolver\'s IP address, e.g. "10.253.0.1" (no port: resolvers answer on 53)'],
  ["dns: empty list", (s) => (s.tunnel.dns = []), 'tunnel.dns: list at least one resolver address, e.g. ["10.253.0.1"], or omit the key'],
  ["dns: IPv6 resolver without an IPv6 tunnel address", (s) => (s.tunnel.dns = ["fd00:253::1"]), 'tunnel.dns[0]: "fd00:253::1" is an IPv6 resolver, but tunnel.addresses has no IPv6 address to reach it from through the tunnel'],
  ["dns: the resolver is the endpoint on port 53", (s) => ((s.tunnel.dns = ["198.51.100.7"]), (s.tunnel.peers[0].endpoint = "198.51.100.7:53")), 'tunnel.dns[0]: "198.51.100.7" is also tunnel.peers[0].endpoint on port 53: the tunnel\'s own packets could not be told apart from queries to the resolver; use the resolver\'s address inside the tunnel'],
  ["dns_domains without dns", (s) => (s.tunnel.dns_domains = ["~corp.example"]), "tunnel.dns_domains: only applies with tunnel.dns (the resolvers that answer those names)"],
  ["dns_domains: a bare dot", (s) => ((s.tunnel.dns = ["10.253.0.1"]), (s.tunnel.dns_domains = ["."])), 'tunnel.dns_domains[0]: "." alone is not a search domain; write "~." to send every query to tunnel.dns'],
  ["dns_domains: not a domain", (s) => ((s.tunnel.dns = ["10.253.0.1"]), (s.tunnel.dns_domains = ["~corp example"])), 'tunnel.dns_domains[0]: "~corp example" is not a domain; write "~." (every name), "~corp.example" (only names under corp.example) or "corp.example" (also searched for single-label names)'],
  ["anchor equal to the tunnel", (s) => (s.split.anchor = "wg0"), "split.anchor: must differ from tunnel.interface: the anchor holds the policy while wg0 comes and goes"],
];

for (const [name, mutate, expected] of cases) {
  test(`bad spec: ${name}`, () => {
    const spec = base();
    mutate(spec);
    assert.equal(problemsOf(spec), typeof expected === "string" ? [expected] : expected);
  });
}

test("include minus exclude must leave something to capture", async () => {
  const { buildPlan, PlanError } = await import("../src/plan.js");
  const spec = base();
  spec.split.include = ["10.1.0.0/16"];
  spec.split.exclude = ["@rfc1918"];
  const result = validateSpec(spec);
  assert.ok(result.ok);
  if (!result.ok) return;
  try {
    buildPlan(result.spec, { prefix: "50" });
    assert.unreachable("should refuse");
  } catch (error) {
    assert.instance(error, PlanError);
    assert.is((error as InstanceType<typeof PlanError>).path, "split.include");
    assert.match((error as Error).message, /leaves no IPv4 destination to capture/);
  }
});

test("all problems are reported at once", () => {
  const spec = base();
  spec.tunnel.interface = "";
  spec.split.table = 254;
  spec.split.exclude = ["10.0.0.1/8"];
  assert.is(problemsOf(spec).length, 3);
});

test.run();
