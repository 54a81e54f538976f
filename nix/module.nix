# NixOS module: split tunnels described in Nix, turned into systemd-networkd files
# by the packaged gen-networkd when the system is built.
#
#   services.gen-networkd = {
#     enable = true;
#     tunnels.wg0.spec = { version = 1; tunnel = { ... }; split = { ... }; };
#   };
#
# Each spec is written out with builtins.toJSON and run through the generator in a
# runCommand; its files are linked into /etc/systemd/network and the networkd.conf
# drop-in into /etc/systemd/networkd.conf.d. The file names are computed from the
# spec (nix/files.nix), so evaluating a configuration never has to read a build
# result (no import-from-derivation); the build fails if the generator's names ever
# differ from these. Written for NixOS 24.11 and later.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.gen-networkd;
  json = pkgs.formats.json { };

  # Spec entries that would copy key material into the Nix store (nix/secrets.nix).
  secretsIn = import ./secrets.nix;

  # Where the generator's files go under /etc, computed from the spec (nix/files.nix).
  etcPaths = tunnel: import ./files.nix { inherit (tunnel) spec prefix anchors; };

  # What the files that restart networkd or resolved are made of (nix/restart-inputs.nix).
  restartInputs = tunnel: import ./restart-inputs.nix { inherit (tunnel) spec prefix anchors; };
  hasResolvedDropIn = tunnel: builtins.any isResolvedPath (etcPaths tunnel);

  generated =
    name: tunnel:
    let
      safeName = lib.strings.sanitizeDerivationName name;
    in
    pkgs.runCommand "gen-networkd-${safeName}"
      {
        nativeBuildInputs = [ cfg.package ];
        spec = builtins.toJSON tunnel.spec;
        expected = lib.concatLines (etcPaths tunnel);
        passAsFile = [
          "spec"
          "expected"
        ];
      }
      ''
        # The file headers name the spec: call it after the tunnel, not after a store path.
        cp "$specPath" ${lib.escapeShellArg "${safeName}.json"}
        gen-networkd ${lib.escapeShellArg "${safeName}.json"} --prefix ${lib.escapeShellArg tunnel.prefix} \
          -o "$out/systemd/network" --conf-dir "$out/systemd/networkd.conf.d"
        if ! diff <(sort "$expectedPath") <(cd "$out" && find . -type f -printf '%P\n' | sort); then
          echo "gen-networkd wrote other files than services.gen-networkd expects (above: < expected, > written):" >&2
          written=$(find "$out/systemd/network" -name '*.netdev' -exec grep -l '^Kind=bridge$' {} + | wc -l)
          if [ "$written" != ${toString tunnel.anchors} ]; then
            echo "this spec's routes need $written anchor links: set services.gen-networkd.tunnels.${name}.anchors = $written;" >&2
          else
            echo "nix/files.nix no longer matches the generator's naming" >&2
          fi
          exit 1
        fi
      '';

  # Every generated file, as the store path environment.etc links to.
  sources = lib.concatLists (
    lib.mapAttrsToList (name: tunnel: map (path: { inherit path; source = "${generated name tunnel}/${path}"; }) (etcPaths tunnel)) cfg.tunnels
  );
  isResolvedPath = lib.hasPrefix "systemd/resolved.conf.d/";
  # The drop-ins of split.killswitch_before: set as options instead (nix/services.nix).
  isServiceDropIn = file: lib.hasPrefix "systemd/system/" file.path;
  etcSources = builtins.filter (file: !isServiceDropIn file) sources;
  networkdSources = builtins.filter (file: !isResolvedPath file.path) etcSources;
  killswitchBefore = lib.mapAttrsToList (
    _: tunnel:
    import ./services.nix {
      inherit (tunnel) spec anchors;
      waitOnline = "${config.systemd.package}/lib/systemd/systemd-networkd-wait-online";
    }
  ) cfg.tunnels;

  tunnelOptions = {
    options = {
      spec = lib.mkOption {
        type = json.type;
        description = ''
          The split-tunnel spec (version 1) as Nix attributes: the same keys and
          values as the JSON spec (see gen-networkd's README). Key files are paths
          given as strings; inline keys are refused so that no secret reaches the
          Nix store.
        '';
        example = lib.literalExpression ''
          {
            version = 1;
            tunnel = {
              interface = "wg0";
              addresses = [ "10.253.0.2/32" ];
              private_key_file = "/run/agenix/wg0-key";
              listen_port = 51820;
              peers = [
                {
                  public_key = "4kQT3smJgD94joC+o+whDz6zEdg42kZIryzw0Rw2w24=";
                  endpoint = "198.51.100.7:51820";
                  allowed_ips = [ "0.0.0.0/0" "::/0" ];
                  persistent_keepalive = 25;
                }
              ];
            };
            split = {
              table = 10086;
              exclude = [ "@local" ];
            };
          }
        '';
      };

      anchors = lib.mkOption {
        type = lib.types.ints.positive;
        default = 1;
        description = ''
          How many anchor links the spec's routes take: networkd applies at most 8,192
          routes per .network file, so gen-networkd spreads a long prefix list over
          anchors of at most 8,000 routes each (split.anchor, then split.anchor-2, ...).
          The count depends on the lists' contents, so Nix cannot compute the file names
          without building first; the build fails naming the right number when this is wrong
          (`gen-networkd SPEC --stdout` also reports it).
        '';
      };

      prefix = lib.mkOption {
        type = lib.types.strMatching "[0-9]{2}";
        default = "50";
        description = "Two-digit prefix of the tunnel's file names, which orders them among other networkd files.";
      };
    };
  };
in
{
  options.services.gen-networkd = {
    enable = lib.mkEnableOption "split tunnels generated by gen-networkd from declarative specs";

    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The gen-networkd package that generates the files when the system is built.";
    };

    tunnels = lib.mkOption {
      type = lib.types.attrsOf (lib.types.submodule tunnelOptions);
      default = { };
      description = "Split tunnels, each described by one spec; the attribute name only names the build.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = lib.mapAttrsToList (name: tunnel: {
      assertion = secretsIn tunnel.spec == [ ];
      message =
        "services.gen-networkd.tunnels.${name}.spec would copy key material into the world-readable Nix store ("
        + lib.concatStringsSep ", " (secretsIn tunnel.spec)
        + "). Give private_key_file / preshared_key_file as strings naming a file on the host,"
        + " e.g. a path from agenix or sops-nix, never as Nix paths; inline keys are refused.";
    }) cfg.tunnels;

    systemd.network.enable = true;

    # Replies to tunnelled traffic arrive on the tunnel, while only the split's
    # selectors route there; NixOS's default reverse-path check (strict, iptables
    # backend) does not see the protocol and drops the replies of IPv4 TCP through
    # the tunnel (measured in gen-networkd's namespace lab). See docs/nixos.md.
    networking.firewall.checkReversePath = lib.mkDefault "loose";

    environment.etc = lib.listToAttrs (map ({ path, source }: lib.nameValuePair path { inherit source; }) etcSources);

    # NixOS reloads or restarts networkd only for the units it renders itself; these
    # files are ours, so changes to them have to trigger the same: a changed .network
    # needs a reload; a changed .netdev or networkd.conf drop-in a restart (and an
    # existing interface is only reconfigured once it is recreated, see systemd.netdev(5)).
    # resolved reads its drop-in (the DNS kill switch) only when it starts. All files of
    # a tunnel come from one build of its whole spec, so the restarts are triggered by
    # what the restarting files are made of, not by their store paths, which change with
    # every edit (nix/restart-inputs.nix); and by the generator, which writes them.
    systemd.services = lib.mkMerge (
      [
        {
          systemd-networkd = {
            reloadTriggers = map (file: file.source) (builtins.filter (file: lib.hasSuffix ".network" file.path) networkdSources);
            restartTriggers = [ "${cfg.package}" ] ++ lib.mapAttrsToList (_: tunnel: (restartInputs tunnel).networkd) cfg.tunnels;
          };
          systemd-resolved.restartTriggers =
            let
              withDropIn = lib.filterAttrs (_: hasResolvedDropIn) cfg.tunnels;
            in
            lib.optionals (withDropIn != { }) ([ "${cfg.package}" ] ++ lib.mapAttrsToList (_: tunnel: (restartInputs tunnel).resolved) withDropIn);
        }
      ]
      ++ killswitchBefore
    );
  };
}
