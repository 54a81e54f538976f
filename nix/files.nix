# The files gen-networkd writes for one spec, as paths under /etc, computed from
# the spec alone so that NixOS can name them without building anything first.
#   systemd/network: NN-<interface>.netdev (only when gen-networkd creates the
#     interface), NN-<interface>.network, and the same two for the anchor, the
#     always-present link that holds the policy (split.anchor, else "<interface>-split");
#   systemd/networkd.conf.d: NN-<interface>.conf, which keeps the routing policy
#     rules other programs add (tailscale's);
#   systemd/resolved.conf.d: NN-<interface>-dns.conf, the DNS kill switch (only with
#     tunnel.dns, split.killswitch and "~." among tunnel.dns_domains, by default there);
#   systemd/system/<service>.d: NN-<anchor>.conf for each of split.killswitch_before,
#     which starts that service once networkd has configured the anchors (on NixOS
#     nix/services.nix sets the same as options; /etc/systemd/system is NixOS's own).
# A long prefix list needs more anchors (networkd applies at most 8,192 routes per
# .network file, so gen-networkd puts at most 8,000 on each): <anchor>-2, -3, ... up to
# `anchors`. How many depends on the lists' contents, which Nix cannot work out without
# running the generator, so it is given (services.gen-networkd.tunnels.<name>.anchors);
# the build names the right number when it is wrong.
# Plain builtins only: the tests evaluate it with a bare Nix evaluator against the
# generator's own output.
{
  spec,
  prefix,
  anchors ? 1,
}:
let
  inherit (spec.tunnel) interface;
  anchor = spec.split.anchor or "${interface}-split";
  anchorNames = builtins.genList (i: if i == 0 then anchor else "${anchor}-${toString (i + 1)}") anchors;
  stem = name: "systemd/network/${prefix}-${name}";
  dnsKillswitch = spec.tunnel ? dns && (spec.split.killswitch or false) && builtins.elem "~." (spec.tunnel.dns_domains or [ "~." ]);
in
(if spec.tunnel.manage or true then [ "${stem interface}.netdev" ] else [ ])
++ [ "${stem interface}.network" ]
++ builtins.concatMap (name: [
  "${stem name}.netdev"
  "${stem name}.network"
]) anchorNames
++ [ "systemd/networkd.conf.d/${prefix}-${interface}.conf" ]
++ (if dnsKillswitch then [ "systemd/resolved.conf.d/${prefix}-${interface}-dns.conf" ] else [ ])
++ map (service: "systemd/system/${service}.d/${prefix}-${anchor}.conf") (spec.split.killswitch_before or [ ])
