// Hand-written files shaped like the generator's output (issue 2), for lab tests
// that must not depend on the generator: the lab's own smoke test and the
// broken-file test, which damages a known-good file and expects the lab to say so.

import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readSpec, specView } from "./expect.js";
import type { Generator } from "./case.js";

/** Renders the subset of spec version 1 the seed example uses (tcp split, exclusions, IPv6 policy). */
export function handWritten(raw: Record<string, any>): Map<string, string> {
  const spec = specView(raw);
  const iface = spec.iface;
  const priority = spec.priority ?? 10086;
  const v4 = spec.addresses.find((a) => !a.includes(":"))?.split("/")[0];
  const v6 = spec.addresses.find((a) => a.includes(":"))?.split("/")[0];
  const files = new Map<string, string>();
  const peer = raw.tunnel.peers[0];
  files.set(
    `50-${iface}.netdev`,
    [
      "# hand-written by the lab",
      "[NetDev]",
      `Name=${iface}`,
      "Kind=wireguard",
      "",
      "[WireGuard]",
      `PrivateKeyFile=${raw.tunnel.private_key_file}`,
      ...(raw.tunnel.listen_port ? [`ListenPort=${raw.tunnel.listen_port}`] : []),
      "RouteTable=off",
      "",
      "[WireGuardPeer]",
      `PublicKey=${peer.public_key}`,
      `Endpoint=${peer.endpoint}`,
      ...(peer.allowed_ips ?? ["0.0.0.0/0", "::/0"]).map((a: string) => `AllowedIPs=${a}`),
      "",
    ].join("\n"),
  );
  const lines = ["# hand-written by the lab", "[Match]", `Name=${iface}`, "", "[Network]", ...spec.addresses.map((a) => `Address=${a}`), ""];
  const route = (entries: string[]) => lines.push("[Route]", ...entries, "");
  if (v4) route(["Destination=0.0.0.0/0", `Table=${spec.table}`, `PreferredSource=${v4}`]);
  if (spec.ipv6 === "tunnel") route(["Destination=::/0", `Table=${spec.table}`, `PreferredSource=${v6}`]);
  if (spec.ipv6 === "block") route(["Type=unreachable", "Destination=::/0", `Table=${spec.table}`]);
  const seen = new Set<string>();
  for (const p of spec.exclude) {
    if (seen.has(p.text) || (p.family === 6 && spec.ipv6 === "direct")) continue;
    seen.add(p.text);
    route(["Type=throw", `Destination=${p.text}`, `Table=${spec.table}`]);
  }
  const families = spec.ipv6 === "direct" ? ["ipv4"] : ["ipv4", "ipv6"];
  for (const family of families) {
    for (const proto of spec.protocols) {
      if (spec.directConnected) {
        lines.push("[RoutingPolicyRule]", `IPProtocol=${proto}`, "Table=main", "SuppressPrefixLength=0", `Priority=${priority - 1}`, `Family=${family}`, "");
      }
      lines.push("[RoutingPolicyRule]", `IPProtocol=${proto}`, `Table=${spec.table}`, `Priority=${priority}`, `Family=${family}`, "");
    }
  }
  files.set(`50-${iface}.network`, lines.join("\n"));
  return files;
}

/** A Generator that writes the hand-written files, optionally damaged by MUTATE. */
export function handGenerator(mutate: (files: Map<string, string>) => void = () => {}): Generator {
  return async (specPath, outDir) => {
    const files = handWritten(await readSpec(specPath));
    mutate(files);
    for (const [name, text] of files) await writeFile(join(outDir, name), text, { mode: 0o644 });
  };
}

/** The blog's setup as a spec (issue 2's seed example), for tests that do not read examples/. */
export const SEED_SPEC = {
  version: 1,
  tunnel: {
    interface: "wg0",
    addresses: ["10.253.0.2/32"],
    manage: true,
    private_key_file: "/etc/systemd/network/wg0.key",
    listen_port: 51820,
    peers: [{ public_key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", endpoint: "198.51.100.7:51820", allowed_ips: ["0.0.0.0/0", "::/0"] }],
  },
  split: { table: 10086, priority: 10086, protocols: ["tcp"], exclude: ["@local"], ipv6: "block", direct_connected: true },
};
