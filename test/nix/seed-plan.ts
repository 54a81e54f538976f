// A hand-built plan shaped like the planner's output for examples/seed.toml, so the
// renderer's tests do not depend on the planner's exact choices.
import { entry, section, type Plan } from "../../src/model.js";
import { AddressSet } from "../../src/prefix.js";

export const seedPlan: Plan = {
  identity: "wg0",
  specHash: "0".repeat(64),
  notes: [],
  routes: 4,
  tunnelled: AddressSet.EMPTY, // renderers do not read it
  units: [
    {
      kind: "netdev",
      fileName: "50-wg0.netdev",
      comment: ["The WireGuard interface."],
      sections: [
        section("NetDev", [entry("Name", "wg0"), entry("Kind", "wireguard")]),
        section("WireGuard", [
          entry("PrivateKeyFile", "/etc/systemd/network/wg0.key"),
          entry("ListenPort", 51820),
          entry("RouteTable", "off"),
        ], ["RouteTable=off: WireGuard adds no routes; the .network decides."]),
        section("WireGuardPeer", [
          entry("PublicKey", "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="),
          entry("Endpoint", "198.51.100.7:51820"),
          entry("AllowedIPs", "0.0.0.0/0"),
          entry("AllowedIPs", "::/0"),
          entry("PersistentKeepalive", 25),
        ]),
      ],
    },
    {
      kind: "network",
      fileName: "50-wg0.network",
      comment: [],
      sections: [
        section("Match", [entry("Name", "wg0")]),
        section("Network", [entry("Address", "10.253.0.2/32")]),
        section("Route", [entry("Destination", "0.0.0.0/0"), entry("Table", 10086), entry("PreferredSource", "10.253.0.2")],
          ["Default route of the split table: through the tunnel."]),
        section("Route", [entry("Type", "throw"), entry("Destination", "10.0.0.0/8"), entry("Table", 10086)],
          ["Excluded destinations: looked up in the main table instead."]),
        section("Route", [entry("Type", "throw"), entry("Destination", "192.168.0.0/16"), entry("Table", 10086)]),
        section("Route", [entry("Type", "unreachable"), entry("Destination", "::/0"), entry("Table", 10086)]),
        section("RoutingPolicyRule", [
          entry("Table", "main"),
          entry("SuppressPrefixLength", 0),
          entry("IPProtocol", "tcp"),
          entry("Family", "ipv4"),
          entry("Priority", 10085),
        ]),
        section("RoutingPolicyRule", [entry("Table", 10086), entry("IPProtocol", "tcp"), entry("Family", "ipv4"), entry("Priority", 10086)]),
        section("RoutingPolicyRule", [
          entry("Table", "main"),
          entry("SuppressPrefixLength", 0),
          entry("IPProtocol", "tcp"),
          entry("Family", "ipv6"),
          entry("Priority", 10085),
        ]),
        section("RoutingPolicyRule", [entry("Table", 10086), entry("IPProtocol", "tcp"), entry("Family", "ipv6"), entry("Priority", 10086)]),
      ],
    },
    {
      kind: "networkd-conf",
      fileName: "50-gen-networkd-wg0.conf",
      comment: ["Keep rules that other programs (tailscale) add."],
      sections: [section("Network", [entry("ManageForeignRoutingPolicyRules", false)])],
    },
  ],
};
