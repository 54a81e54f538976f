// What NixOS makes of the evaluated `systemd.network` options: the networkd files
// it would write, by NixOS's own rendering rules (nixos/lib/systemd-lib.nix
// attrsToSection and nixos/lib/systemd-network-units.nix, 24.11 layout):
//   - one `Key=value` line per list element; true/false for booleans; integers in decimal;
//   - keys sorted within a section (Nix attribute sets are sorted);
//   - [Match], [NetDev], [WireGuard], one [WireGuardPeer] per peer for a netdev;
//   - [Match], [Link], [Network] (networkConfig, then one Address= per address), every
//     [RoutingPolicyRule], then every [Route] for a network;
//   - [Network] of /etc/systemd/networkd.conf from systemd.network.config.networkConfig.
// Any option this file does not know is an error, so nothing the module sets can go unchecked.

import type { Entry, Section } from "../../src/model.js";

/** What lib.mkDefault "loose" evaluates to (an override marker the module system reads), as the module sets the firewall's reverse-path check. */
export const LOOSE_BY_DEFAULT = { _type: "override", priority: 1000, content: "loose" } as const;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Attrs = { [key: string]: Json };

function isAttrs(value: Json | undefined): value is Attrs {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function attrs(value: Json | undefined, where: string): Attrs {
  if (value === undefined) return {};
  if (!isAttrs(value)) throw new Error(`${where}: expected an attribute set, got ${JSON.stringify(value)}`);
  return value;
}

function list(value: Json | undefined, where: string): Json[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new Error(`${where}: expected a list, got ${JSON.stringify(value)}`);
  return value;
}

function onlyKeys(value: Attrs, allowed: readonly string[], where: string): void {
  const unknown = Object.keys(value).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) throw new Error(`${where}: options the NixOS mapping does not know: ${unknown.join(", ")}`);
}

/** NixOS's toOption: booleans as true/false, numbers and strings as text. */
function option(value: Json, where: string): string {
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new Error(`${where}: ${value} is not an integer`);
    return String(value);
  }
  if (typeof value === "string") return value;
  throw new Error(`${where}: unit option value must be a string, integer or boolean, got ${JSON.stringify(value)}`);
}

/** attrsToSection: keys in Nix's (sorted) order, one line per list element. */
function section(name: string, value: Attrs, where: string): Section {
  const entries: Entry[] = Object.keys(value)
    .sort()
    .flatMap((key) => {
      const v = value[key]!;
      return (Array.isArray(v) ? v : [v]).map((x) => ({ key, value: option(x, `${where}.${key}`) }));
    });
  return { name, comment: [], entries };
}

function netdevUnit(def: Attrs, where: string): Section[] {
  onlyKeys(def, ["matchConfig", "netdevConfig", "wireguardConfig", "wireguardPeers"], where);
  const out: Section[] = [];
  const match = attrs(def.matchConfig, `${where}.matchConfig`);
  if (Object.keys(match).length > 0) out.push(section("Match", match, `${where}.matchConfig`));
  out.push(section("NetDev", attrs(def.netdevConfig, `${where}.netdevConfig`), `${where}.netdevConfig`));
  const wireguard = attrs(def.wireguardConfig, `${where}.wireguardConfig`);
  if (Object.keys(wireguard).length > 0) out.push(section("WireGuard", wireguard, `${where}.wireguardConfig`));
  list(def.wireguardPeers, `${where}.wireguardPeers`).forEach((peer, i) =>
    out.push(section("WireGuardPeer", attrs(peer, `${where}.wireguardPeers[${i}]`), `${where}.wireguardPeers[${i}]`)),
  );
  return out;
}

function networkUnit(def: Attrs, where: string): Section[] {
  onlyKeys(def, ["matchConfig", "linkConfig", "networkConfig", "address", "routingPolicyRules", "routes"], where);
  const out: Section[] = [];
  const match = attrs(def.matchConfig, `${where}.matchConfig`);
  if (Object.keys(match).length > 0) out.push(section("Match", match, `${where}.matchConfig`));
  const link = attrs(def.linkConfig, `${where}.linkConfig`);
  if (Object.keys(link).length > 0) out.push(section("Link", link, `${where}.linkConfig`));
  const network = section("Network", attrs(def.networkConfig, `${where}.networkConfig`), `${where}.networkConfig`);
  const addresses = list(def.address, `${where}.address`).map((a, i) => ({ key: "Address", value: option(a, `${where}.address[${i}]`) }));
  out.push({ ...network, entries: [...network.entries, ...addresses] });
  list(def.routingPolicyRules, `${where}.routingPolicyRules`).forEach((rule, i) =>
    out.push(section("RoutingPolicyRule", attrs(rule, `${where}.routingPolicyRules[${i}]`), `${where}.routingPolicyRules[${i}]`)),
  );
  list(def.routes, `${where}.routes`).forEach((route, i) =>
    out.push(section("Route", attrs(route, `${where}.routes[${i}]`), `${where}.routes[${i}]`)),
  );
  return out;
}

/**
 * The networkd files NixOS writes for an evaluated `systemd.network` value, keyed
 * "<name>.netdev", "<name>.network", and "networkd.conf".
 */
export function nixosNetworkdFiles(systemdNetwork: Json): Map<string, Section[]> {
  const network = attrs(systemdNetwork, "systemd.network");
  onlyKeys(network, ["enable", "netdevs", "networks", "config"], "systemd.network");
  const files = new Map<string, Section[]>();
  for (const [name, def] of Object.entries(attrs(network.netdevs, "systemd.network.netdevs"))) {
    files.set(`${name}.netdev`, netdevUnit(attrs(def, name), `systemd.network.netdevs.${name}`));
  }
  for (const [name, def] of Object.entries(attrs(network.networks, "systemd.network.networks"))) {
    files.set(`${name}.network`, networkUnit(attrs(def, name), `systemd.network.networks.${name}`));
  }
  if (network.config !== undefined) {
    const config = attrs(network.config, "systemd.network.config");
    onlyKeys(config, ["networkConfig"], "systemd.network.config");
    files.set("networkd.conf", [section("Network", attrs(config.networkConfig, "networkConfig"), "systemd.network.config.networkConfig")]);
  }
  return files;
}

/** resolved.conf as NixOS writes it from services.resolved: its own [Resolve] lines (none set by the module), then extraConfig. */
export function nixosResolvedConf(services: Json): Section[] {
  const resolved = attrs(attrs(services, "services").resolved, "services.resolved");
  onlyKeys(attrs(services, "services"), ["resolved"], "services");
  onlyKeys(resolved, ["extraConfig"], "services.resolved");
  const text = resolved.extraConfig;
  if (typeof text !== "string") throw new Error(`services.resolved.extraConfig: expected a string, got ${JSON.stringify(text)}`);
  const entries = text.split("\n").filter(Boolean).map((line) => ({ key: line.slice(0, line.indexOf("=")), value: line.slice(line.indexOf("=") + 1) }));
  return [{ name: "Resolve", comment: [], entries }];
}

/** NixOS's systemd has no /usr: the module names wait-online in the system profile's systemd. */
const NIXOS_SYSTEMD_LIBEXEC = "/run/current-system/systemd/lib/systemd/";

/**
 * The drop-ins that systemd.services.NAME amounts to (keyed "NAME.service.d"), as systemd-lib.nix
 * renders a service: `wants` and `after` as [Unit] Wants=/After=, serviceConfig as [Service].
 * wait-online's path is read back as the networkd files name it, the one value that differs by design.
 */
export function nixosServiceDropIns(services: Json): Map<string, Section[]> {
  const dropIns = new Map<string, Section[]>();
  for (const [name, def] of Object.entries(attrs(services, "systemd.services"))) {
    const where = `systemd.services.${name}`;
    const service = attrs(def, where);
    onlyKeys(service, ["wants", "after", "serviceConfig"], where);
    const unit = (["wants", "after"] as const).flatMap((key) => list(service[key], `${where}.${key}`).map((v) => ({ key: key === "wants" ? "Wants" : "After", value: option(v, `${where}.${key}`) })));
    const serviceConfig = section("Service", attrs(service.serviceConfig, `${where}.serviceConfig`), `${where}.serviceConfig`);
    onlyKeys(attrs(service.serviceConfig, `${where}.serviceConfig`), ["ExecStartPre"], `${where}.serviceConfig`);
    const execStartPre = serviceConfig.entries.map((e) => ({ ...e, value: String(e.value).replace(NIXOS_SYSTEMD_LIBEXEC, "/usr/lib/systemd/") }));
    dropIns.set(`${name}.service.d`, [{ name: "Unit", comment: [], entries: unit }, { ...serviceConfig, entries: execStartPre }]);
  }
  return dropIns;
}

// Section order in NixOS's rendering; networkd itself does not care about the order of sections.
const NIXOS_SECTION_ORDER = ["Match", "NetDev", "WireGuard", "WireGuardPeer", "Link", "Network", "RoutingPolicyRule", "Route", "Resolve", "Unit", "Service"];

/**
 * Sections in a form two renderings of the same configuration agree on: sections in
 * NixOS's order, keys sorted within a section (repeated keys keep their order), values
 * as text, comments and empty sections dropped. Both sides of a comparison go through it.
 */
export function comparable(sections: readonly Section[]): { name: string; lines: string[] }[] {
  const rank = (name: string): number => {
    const i = NIXOS_SECTION_ORDER.indexOf(name);
    if (i < 0) throw new Error(`section [${name}] has no known place in NixOS's rendering`);
    return i;
  };
  return sections
    .filter((s) => s.entries.length > 0)
    .map((s, index) => ({ s, index }))
    .sort((a, b) => rank(a.s.name) - rank(b.s.name) || a.index - b.index)
    .map(({ s }) => ({
      name: s.name,
      lines: s.entries
        .map((e, index) => ({ e, index }))
        .sort((a, b) => (a.e.key < b.e.key ? -1 : a.e.key > b.e.key ? 1 : a.index - b.index))
        .map(({ e }) => `${e.key}=${String(e.value)}`),
    }));
}

// The options and keys the emitted modules may set, each checked by hand against
// NixOS's own validation (nixos/modules/system/boot/networkd.nix, 24.11 and later:
// its assertOnlyFields lists and value assertions) with the JSON types NixOS accepts
// for it. NixOS rejects an unlisted key or a wrong type when the system is built,
// which no test here could see; so a key the planner starts to emit fails this list
// first, until someone has checked it there and added it.
type JsonType = "string" | "int" | "bool";
const CHECKED_AGAINST_NIXOS: Readonly<Record<string, Readonly<Record<string, readonly JsonType[]>>>> = {
  netdevConfig: { Name: ["string"], Kind: ["string"], MTUBytes: ["int", "string"] },
  wireguardConfig: { PrivateKeyFile: ["string"], ListenPort: ["int"], FirewallMark: ["int"], RouteTable: ["string", "int"] },
  wireguardPeers: {
    PublicKey: ["string"],
    PresharedKeyFile: ["string"],
    AllowedIPs: ["string"],
    Endpoint: ["string"],
    PersistentKeepalive: ["int"],
  },
  matchConfig: { Name: ["string"] },
  linkConfig: { MTUBytes: ["int", "string"], RequiredForOnline: ["bool", "string"] },
  networkConfig: { ConfigureWithoutCarrier: ["bool"], IPv6AcceptRA: ["bool"], LinkLocalAddressing: ["string", "bool"], DNS: ["string"], Domains: ["string"], DNSDefaultRoute: ["bool"] },
  routes: { Destination: ["string"], Metric: ["int"], PreferredSource: ["string"], Table: ["int", "string"], Type: ["string"] },
  routingPolicyRules: {
    Table: ["int", "string"],
    Priority: ["int"],
    Family: ["string"],
    To: ["string"],
    IPProtocol: ["string", "int"],
    SuppressPrefixLength: ["int"],
    FirewallMark: ["int"],
    IncomingInterface: ["string"],
    User: ["int", "string"],
    DestinationPort: ["int", "string"],
    // assertPortOrPortRange, like DestinationPort: a port or "A-B" (blocked IPv6 TCP's "1-65534").
    SourcePort: ["int", "string"],
    // In assertOnlyFields, with no value assertion: any string (an address prefix, e.g. "0.0.0.0/32").
    From: ["string"],
  },
  "config.networkConfig": { ManageForeignRoutingPolicyRules: ["bool"] },
};

function jsonType(value: Json): JsonType | "other" {
  if (typeof value === "string") return "string";
  if (typeof value === "boolean") return "bool";
  if (typeof value === "number" && Number.isInteger(value)) return "int";
  return "other";
}

/** Keys of an evaluated `systemd.network` that are not (or not with that type) in the checked list, as "option.Key: type". */
export function uncheckedKeys(systemdNetwork: Json): string[] {
  const network = attrs(systemdNetwork, "systemd.network");
  const found: string[] = [];
  const check = (option: string, set: Json) => {
    for (const [key, value] of Object.entries(attrs(set, option))) {
      for (const v of Array.isArray(value) ? value : [value]) {
        const type = jsonType(v);
        if (!(CHECKED_AGAINST_NIXOS[option]?.[key] ?? []).includes(type as JsonType)) found.push(`${option}.${key}: ${type}`);
      }
    }
  };
  const units = [...Object.values(attrs(network.netdevs, "netdevs")), ...Object.values(attrs(network.networks, "networks"))];
  for (const unit of units) {
    for (const [option, value] of Object.entries(attrs(unit, "unit"))) {
      if (option === "address") continue;
      for (const set of Array.isArray(value) ? value : [value]) check(option, set);
    }
  }
  if (network.config !== undefined) check("config.networkConfig", attrs(network.config, "config").networkConfig ?? {});
  return [...new Set(found)].sort();
}
