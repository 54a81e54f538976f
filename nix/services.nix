# The services of split.killswitch_before, as NixOS options: each starts once networkd
# has configured the anchors, as the drop-in gen-networkd writes for other systems
# (systemd/system/<service>.d/NN-<anchor>.conf) makes it. NixOS owns /etc/systemd/system,
# so the drop-in cannot be linked there; these options merge into the service's own
# (wants, after and a list-valued ExecStartPre concatenate with other definitions).
# Plain builtins only: the tests compare it with the generator's `--format nix` module.
{
  spec,
  anchors ? 1,
  # systemd's wait-online program, e.g. "${config.systemd.package}/lib/systemd/systemd-networkd-wait-online".
  waitOnline,
}:
let
  anchor = spec.split.anchor or "${spec.tunnel.interface}-split";
  anchorNames = builtins.genList (i: if i == 0 then anchor else "${anchor}-${toString (i + 1)}") anchors;
  # "-": after 30 s the service starts anyway (as in the drop-in; see gen-networkd's docs/leakproof.md).
  wait = builtins.concatStringsSep " " ([ "-${waitOnline}" ] ++ map (name: "--interface=${name}:no-carrier") anchorNames ++ [ "--timeout=30" ]);
  unitName = service: builtins.substring 0 (builtins.stringLength service - 8) service; # without ".service"
in
builtins.listToAttrs (
  map (service: {
    name = unitName service;
    value = {
      wants = [ "systemd-networkd.service" ];
      after = [ "systemd-networkd.service" ];
      serviceConfig.ExecStartPre = [ wait ];
    };
  }) (spec.split.killswitch_before or [ ])
)
