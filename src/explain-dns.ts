// `gen-networkd explain SPEC dns:NAME`: where systemd-resolved sends a lookup for
// NAME once the plan is applied (which link's servers, by resolved's routing
// domains), and the path its queries to the tunnel's resolvers take (UDP and TCP
// port 53, simulated like any flow). Pure: the caller simulates the flows.

import { addressOf } from "./host-state.js";
import { dnsDomains, type Spec } from "./spec.js";

export const LOOKUP_PREFIX = "dns:";

/** Where resolved sends a lookup for one name, as the spec sets it up. */
export interface Lookup {
  readonly name: string;
  /** "tunnel": to tunnel.dns (through the tunnel's link); "other-links": to the other links' servers. */
  readonly goes_to: "tunnel" | "other-links";
  /** The tunnel's routing domain that matched ("~." for every name), when it goes to the tunnel. */
  readonly matched_domain: string | null;
  /** The resolvers it is sent to when it goes to the tunnel. */
  readonly servers: readonly string[];
  /** Why, in a sentence each, including what the spec cannot know or change. */
  readonly notes: readonly string[];
}

/** A lookup argument ("dns:wiki.corp.example") as a name, or an error text. */
export function lookupName(word: string): { name: string } | { error: string } {
  const name = word.slice(LOOKUP_PREFIX.length).replace(/\.$/, "").toLowerCase();
  if (!/^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$/.test(name) || name.length > 253) {
    return { error: `${JSON.stringify(word)} is not a name to look up; write e.g. dns:www.example.com` };
  }
  return { name };
}

/** resolved's match of NAME against one routing domain: the domain's length in labels, or -1. "~." matches everything with 0. */
function matchLength(name: string, domain: string): number {
  const bare = domain.replace(/^~/, "").replace(/\.$/, "").toLowerCase();
  if (bare === "") return 0;
  return name === bare || name.endsWith(`.${bare}`) ? bare.split(".").length : -1;
}

export function explainLookup(spec: Spec, name: string): Lookup {
  const tunnel = spec.tunnel.interface;
  const resolvers = spec.tunnel.dns ?? [];
  const notes: string[] = [];
  if (resolvers.length === 0) {
    return {
      name,
      goes_to: "other-links",
      matched_domain: null,
      servers: [],
      notes: [`the spec sets no tunnel.dns: ${tunnel} has no DNS servers, so lookups go wherever this host's resolver already sends them (\`resolvectl status\`, or /etc/resolv.conf)`],
    };
  }
  const domains = dnsDomains(spec);
  const searched = domains.filter((d) => !d.startsWith("~"));
  if (!name.includes(".") && searched.length > 0) {
    // resolved never sends a single-label name to unicast DNS as it is (ResolveUnicastSingleLabel=no); it appends search domains.
    const qualified = explainLookup(spec, `${name}.${searched[0]}`);
    return { ...qualified, notes: [`a single-label name: resolved looks up ${searched.map((d) => `${name}.${d}`).join(", then ")} (tunnel.dns_domains without "~" are search domains)`, ...qualified.notes] };
  }
  const best = domains.map((d) => ({ d, n: matchLength(name, d) })).filter((m) => m.n >= 0).sort((a, b) => b.n - a.n)[0];
  const users = spec.split.users !== undefined;
  if (best) {
    notes.push(
      best.d === "~."
        ? `"~." routes every name to ${tunnel}'s servers, ahead of links without domains (the LAN's); only a link with a longer matching domain of its own would take it instead`
        : `${JSON.stringify(best.d)} on ${tunnel} matches; a link with a longer matching domain of its own would take it instead`,
    );
    if (spec.split.killswitch && domains.includes("~.")) {
      notes.push(`kill switch: the resolvers are also resolved's global servers, so while ${tunnel} is down the lookup still goes to them and fails instead of reaching the LAN's resolver`);
    } else if (spec.split.killswitch) {
      notes.push(`while ${tunnel} is down its servers are gone and resolved sends this name to the other links' servers: the kill switch covers queries to ${resolvers.join(", ")}, not resolved's choice of server for split domains`);
    } else {
      notes.push(`while ${tunnel} is down its servers are gone and resolved sends this name to the other links' servers (set split.killswitch, with "~.", to make lookups fail instead)`);
    }
  } else {
    notes.push(`no domain of ${tunnel} (${domains.join(" ")}) matches, and DNSDefaultRoute=false keeps ${tunnel}'s servers out of lookups for other names: resolved sends it to the other links' servers (\`resolvectl dns\`)`);
  }
  notes.push(
    `systemd-resolved sends its queries as its own user (systemd-resolve), not as the application's${users ? ": split.users cannot choose which users' lookups take the tunnel" : ""}; the rules for port 53 to ${resolvers.join(", ")} select no user, so those queries take ${tunnel} for everyone`,
  );
  return { name, goes_to: best ? "tunnel" : "other-links", matched_domain: best?.d ?? null, servers: best ? resolvers : [], notes };
}

/** The resolvers' addresses, parsed, for the caller to simulate port 53 flows to. */
export function resolverAddresses(lookup: Lookup): { text: string; family: 4 | 6; value: bigint }[] {
  return lookup.servers.map((text) => ({ text, ...addressOf(text)! }));
}
