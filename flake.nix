{
  description = "gen-networkd: one declarative split-tunnel spec to systemd-networkd files or a NixOS module";

  # Written for NixOS 24.11 (the systemd.network option layout with flat list entries).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      # Linux only: systemd-networkd is the point.
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forAllSystems (pkgs: rec {
        gen-networkd = pkgs.callPackage ./nix/package.nix { };
        default = gen-networkd;
      });

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = lib.getExe self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            nodejs_20
            typescript
            # The namespace lab: real networkd, userspace WireGuard, nftables for the firewall checks.
            iproute2
            wireguard-tools
            wireguard-go
            systemd
            nftables
            # Evaluates the emitted NixOS modules in the tests.
            nix
            jq
          ];
        };
      });

      # The unit tests, run while building the package; tests that need root (the
      # namespace lab) or a Nix evaluator are reported as skipped inside the sandbox.
      checks = forAllSystems (pkgs: {
        tests = self.packages.${pkgs.stdenv.hostPlatform.system}.default.overrideAttrs { doCheck = true; };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-rfc-style);

      nixosModules.default = ./nix/module.nix;
    };
}
