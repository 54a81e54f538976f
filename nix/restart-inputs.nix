# What the generated files that make NixOS restart a service are made of, computed
# from the spec alone. nixpkgs reloads systemd-networkd when a .network file changes
# and restarts it when any other of its units or networkd.conf does; a restart instead
# of a reload leaves the previous routing policy rules behind. Every generated file
# comes out of one build of the whole spec, so their store paths all change with any
# edit: as restart triggers they would restart networkd for an edit of split.exclude.
# These are the restart triggers instead:
#   networkd: what the .netdev files (the tunnel's: its name, key file, listen port,
#     peers, and the firewall mark when UDP is captured; the anchors': their names and
#     how many) and the networkd.conf drop-in (the interface in its name) are made of;
#     the whole tunnel except what only its .network holds (addresses, MTU, DNS);
#   resolved: what the DNS kill switch drop-in is made of.
# The tests check, for random specs, that equal inputs mean equal files (but for the
# header comment naming the tunnel's attribute, which networkd does not read).
# Plain builtins only: the tests evaluate it with a bare Nix evaluator.
{
  spec,
  prefix,
  anchors ? 1,
}:
let
  split = spec.split or { };
in
{
  networkd = builtins.toJSON {
    inherit prefix anchors;
    tunnel = builtins.removeAttrs spec.tunnel [
      "addresses"
      "mtu"
      "dns"
      "dns_domains"
    ];
    split = {
      protocols = split.protocols or null;
      table = split.table or null;
      fwmark = split.fwmark or null;
      anchor = split.anchor or null;
    };
  };
  resolved = builtins.toJSON {
    inherit prefix;
    inherit (spec.tunnel) interface;
    dns = spec.tunnel.dns or null;
  };
}
