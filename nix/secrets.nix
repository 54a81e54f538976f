# Where a spec given as Nix attributes would put key material into the
# world-readable Nix store, as dotted paths (empty when it would not):
#   - an inline key (private_key, preshared_key): the generator refuses these too,
#     but only once the spec, with the key, is already in the store;
#   - a key file given as a Nix path (private_key_file = ./wg0.key): turning the
#     spec into JSON copies the file itself into the store.
# Plain builtins only: the tests evaluate it with a bare Nix evaluator.
let
  inlineKeys = [
    "private_key"
    "preshared_key"
  ];
  keyFileKeys = [
    "private_key_file"
    "preshared_key_file"
  ];
  secretsIn =
    path: value:
    if builtins.isAttrs value then
      builtins.concatLists (
        map (
          key:
          let
            inner = value.${key};
            here = path ++ [ key ];
            secret = builtins.elem key inlineKeys || (builtins.elem key keyFileKeys && builtins.isPath inner);
          in
          (if secret then [ here ] else [ ]) ++ secretsIn here inner
        ) (builtins.attrNames value)
      )
    else if builtins.isList value then
      builtins.concatLists (
        builtins.genList (index: secretsIn (path ++ [ (toString index) ]) (builtins.elemAt value index)) (builtins.length value)
      )
    else
      [ ];
in
spec: map (builtins.concatStringsSep ".") (secretsIn [ ] spec)
