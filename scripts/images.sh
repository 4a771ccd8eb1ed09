#!/usr/bin/env bash
# Builds Meltemi's OCI images reproducibly (no Docker daemon, no base image: every file is ours
# or listed by ldd) and, with MELTEMI_REGISTRY set, pushes them and prints their digests.
#
#   meltemi/controller  the `meltemi` binary (release, glibc) plus exactly the shared libraries
#                       ldd lists; User 65532:65532; no shell.
#   meltemi/wasm:V      the .wasm in Istio's *compat* variant: one tar+gzip layer holding
#                       plugin.wasm, manifest annotation module.wasm.image/variant=compat
#                       (what deploy/istio/wasmplugin.yaml pulls).
#   meltemi/wasm:V-oci  the same .wasm in the *oci* variant: the module is a raw layer blob, so any
#                       Envoy loads it straight from the registry (vm_config.code.remote on
#                       /v2/meltemi/wasm/blobs/<digest> with its sha256). Istio pulls it too.
#   meltemi/artifacts   /meltemi/libmeltemi.so, /meltemi/meltemi_wasm.wasm and /meltemi/install
#                       (a static copier, the entrypoint) for deploy/istio/sidecar-module.yaml.
#
# Reproducible: files are staged with fixed modes, tarred sorted with uid/gid 0 and mtime
# SOURCE_DATE_EPOCH (default 0), gzip -n, JSON written by jq; same inputs -> same digests.
#
# Usage: scripts/images.sh
#   MELTEMI_REGISTRY=host:port[/path]  push there (skopeo; MELTEMI_REGISTRY_TLS_VERIFY=false for
#                                      a plain-HTTP registry); unset: build the OCI layouts only
#   MELTEMI_IMAGES_OUT=DIR             output (default $CARGO_TARGET_DIR/images): oci/<name>/ layouts,
#                                      images.env (the digests), deploy/ (deploy/ with them filled in)
#   MELTEMI_IMAGES_PUSH=0              name the images in MELTEMI_REGISTRY (printed, images.env,
#                                      deploy/) without pushing
#   MELTEMI_IMAGES_BUILD=0             use the built binaries as they are (no cargo); the tests do
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
. scripts/env.sh
start=$(date +%s%N)

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-0}"
export LC_ALL=C TZ=UTC
created="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
out="${MELTEMI_IMAGES_OUT:-$CARGO_TARGET_DIR/images}"
registry="${MELTEMI_REGISTRY:-}"
tls="${MELTEMI_REGISTRY_TLS_VERIFY:-true}"

if [ "${MELTEMI_IMAGES_BUILD:-1}" != 0 ]; then
  bash scripts/build-artifacts.sh >/dev/null
  cargo build -q --release -p meltemi-controller --bin meltemi
fi
meltemi="$CARGO_TARGET_DIR/release/meltemi"
so="$CARGO_TARGET_DIR/release/libmeltemi.so"
wasm="$CARGO_TARGET_DIR/wasm32-wasip1/release-wasm/meltemi_wasm.wasm"
for f in "$meltemi" "$so" "$wasm"; do
  [ -f "$f" ] || { echo "images: $f is missing (run without MELTEMI_IMAGES_BUILD=0)" >&2; exit 1; }
done

rm -rf "$out/oci" "$out/stage" "$out/deploy"
mkdir -p "$out/oci" "$out/stage"
: >"$out/images.env.tmp"

sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }

# blob LAYOUT FILE -> stores FILE under its digest, prints "sha256:<hex> <size>"
blob() {
  local d; d="$(sha "$2")"
  mkdir -p "$1/blobs/sha256"
  cp "$2" "$1/blobs/sha256/$d"
  echo "sha256:$d $(size "$2")"
}

# layer ROOTFS TARFILE: a sorted ustar of ROOTFS, root-owned, mtime SOURCE_DATE_EPOCH, then gzip -n.
layer() {
  (cd "$1" && find . -mindepth 1 -printf '%P\n' | sort) |
    tar -C "$1" --create --no-recursion --format=ustar --owner=0 --group=0 --numeric-owner \
      --mtime="@$SOURCE_DATE_EPOCH" --files-from=- --file="$2"
  gzip -n -6 -c "$2" >"$2.gz"
}

# stage ROOTFS: fixed modes (dirs and executables 0755, other files 0644) whatever the umask.
fix_modes() {
  find "$1" -type d -exec chmod 0755 {} +
  find "$1" -type f -exec chmod 0644 {} +
  [ $# -gt 1 ] && (cd "$1" && chmod 0755 "${@:2}")
  return 0
}

# image NAME TAG CONFIG_MEDIA_TYPE CONFIG_FILE MANIFEST_ANNOTATIONS_JSON LAYER_DESCRIPTORS_JSON:
# writes the OCI layout $out/oci/NAME-TAG (tag TAG) and records NAME TAG DIGEST SIZE.
image() {
  local name="$1" tag="$2" dir="$out/oci/$1-$2"
  mkdir -p "$dir"
  local cfg_digest cfg_size m_digest m_size
  read -r cfg_digest cfg_size <<<"$(blob "$dir" "$4")"
  jq -cn --arg cmt "$3" --arg cd "$cfg_digest" --argjson cs "$cfg_size" \
    --argjson ann "$5" --argjson layers "$6" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: $cmt, digest: $cd, size: $cs}, layers: $layers}
     + (if $ann == {} then {} else {annotations: $ann} end)' | tr -d '\n' >"$out/stage/manifest.json"
  read -r m_digest m_size <<<"$(blob "$dir" "$out/stage/manifest.json")"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
  jq -cn --arg d "$m_digest" --argjson s "$m_size" --arg tag "$tag" \
    '{schemaVersion: 2, manifests: [{mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: $d, size: $s, annotations: {"org.opencontainers.image.ref.name": $tag}}]}' \
    | tr -d '\n' >"$dir/index.json"
  # Pushed size: manifest + config + layers, as a pull transfers them.
  local total; total=$(( m_size + $(jq '[.config.size] + [.layers[].size] | add' "$out/stage/manifest.json") ))
  echo "$name $tag $m_digest $total" >>"$out/images.list.tmp"
}

# image config: OCI image config with one history entry per layer, all at $created.
oci_config() { # OS ARCH DIFF_ID CONFIG_JSON -> stdout
  jq -cn --arg os "$1" --arg arch "$2" --arg diff "$3" --argjson c "$4" --arg created "$created" \
    '{created: $created, architecture: $arch, os: $os, config: $c,
      rootfs: {type: "layers", diff_ids: [$diff]},
      history: [{created: $created, created_by: "scripts/images.sh"}]}' | tr -d '\n'
}

gz_layer_desc() { # TARFILE -> descriptor JSON of TARFILE.gz
  jq -cn --arg d "sha256:$(sha "$1.gz")" --argjson s "$(size "$1.gz")" \
    '{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $d, size: $s}'
}

: >"$out/images.list.tmp"
labels="$(jq -cn --arg v "$version" '{"org.opencontainers.image.title": "meltemi",
  "org.opencontainers.image.version": $v,
  "org.opencontainers.image.source": "https://github.com/meltemi-mesh/meltemi",
  "org.opencontainers.image.licenses": "Apache-2.0"}')"

# --- controller: the release binary and the shared libraries it needs, at the paths ldd gives.
root="$out/stage/controller"
mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp"
cp "$meltemi" "$root/usr/local/bin/meltemi"
libs=()
while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
  libs+=("${lib#/}")
done < <(ldd "$meltemi" | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^\s*\(\/[^ ]*\) (0x.*/\1/p' | sort -u)
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$root/etc/group"
fix_modes "$root" usr/local/bin/meltemi "${libs[@]}"
chmod 1777 "$root/tmp"
layer "$root" "$out/stage/controller.tar"
ctl_config="$(jq -cn --argjson labels "$labels" '{User: "65532:65532",
  Entrypoint: ["/usr/local/bin/meltemi"], Cmd: ["run"], WorkingDir: "/",
  Env: ["PATH=/usr/local/bin"], ExposedPorts: {"8080/tcp": {}}, Labels: $labels}')"
oci_config linux amd64 "sha256:$(sha "$out/stage/controller.tar")" "$ctl_config" >"$out/stage/controller.json"
d="$out/oci/controller-$version"; mkdir -p "$d"; blob "$d" "$out/stage/controller.tar.gz" >/dev/null
image controller "$version" application/vnd.oci.image.config.v1+json "$out/stage/controller.json" '{}' \
  "[$(gz_layer_desc "$out/stage/controller.tar")]"

# --- wasm, compat variant: exactly one tar+gzip layer holding plugin.wasm. Istio's fetcher
# (pkg/wasm/imagefetcher.go) accepts only tar+gzip here (it gzip-reads the layer), so the
# layer is compressed; the oci variant below carries the raw module for Envoy's own fetch.
root="$out/stage/wasm"
mkdir -p "$root"
cp "$wasm" "$root/plugin.wasm"
fix_modes "$root"
layer "$root" "$out/stage/wasm.tar"
oci_config wasip1 wasm "sha256:$(sha "$out/stage/wasm.tar")" "{\"Labels\":$labels}" >"$out/stage/wasm.json"
d="$out/oci/wasm-$version"; mkdir -p "$d"; blob "$d" "$out/stage/wasm.tar.gz" >/dev/null
image wasm "$version" application/vnd.oci.image.config.v1+json "$out/stage/wasm.json" \
  '{"module.wasm.image/variant":"compat"}' "[$(gz_layer_desc "$out/stage/wasm.tar")]"

# --- wasm, oci variant (solo-io/wasm spec.md): a runtime-config layer and the raw module layer.
d="$out/oci/wasm-$version-oci"; mkdir -p "$d"
printf '{"type":"envoy_proxy","abiVersions":["proxy_abi_version_0_2_1"],"config":{"rootIds":["meltemi"]}}' \
  >"$out/stage/runtime-config.json"
read -r rc_digest rc_size <<<"$(blob "$d" "$out/stage/runtime-config.json")"
read -r w_digest w_size <<<"$(blob "$d" "$wasm")"
image wasm "$version-oci" application/vnd.module.wasm.config.v1+json "$out/stage/runtime-config.json" '{}' \
  "$(jq -cn --arg rd "$rc_digest" --argjson rs "$rc_size" --arg wd "$w_digest" --argjson ws "$w_size" \
    '[{mediaType: "application/vnd.module.wasm.config.v1+json", digest: $rd, size: $rs,
       annotations: {"org.opencontainers.image.title": "runtime-config.json"}},
      {mediaType: "application/vnd.module.wasm.content.layer.v1+wasm", digest: $wd, size: $ws,
       annotations: {"org.opencontainers.image.title": "plugin.wasm"}}]')"

# --- artifacts: the .so and the .wasm under /meltemi plus a static copier as the entrypoint
# (the image has no shell or cp: `install DIR` copies the files next to it into DIR).
root="$out/stage/artifacts"
mkdir -p "$root/meltemi" "$out/stage/install-src"
cp "$so" "$root/meltemi/libmeltemi.so"
cp "$wasm" "$root/meltemi/meltemi_wasm.wasm"
cat >"$out/stage/install-src/install.rs" <<'EOF'
//! `install DIR`: copies the artifacts that sit next to this binary into DIR (an emptyDir that
//! istio-proxy mounts as its dynamic-module search path). Static: the image has no libc.
use std::path::PathBuf;
use std::process::ExitCode;
fn main() -> ExitCode {
    let Some(to) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: install DIR");
        return ExitCode::from(2);
    };
    let from = std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from));
    let from = from.unwrap_or_else(|| PathBuf::from("/meltemi"));
    for name in ["libmeltemi.so", "meltemi_wasm.wasm"] {
        match std::fs::copy(from.join(name), to.join(name)) {
            Ok(n) => println!("{} ({n} bytes)", to.join(name).display()),
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
EOF
rustc --edition 2021 -C opt-level=s -C strip=symbols -C target-feature=+crt-static \
  -C codegen-units=1 --remap-path-prefix="$out/stage/install-src=/build" \
  -o "$root/meltemi/install" "$out/stage/install-src/install.rs" 2>"$out/stage/install-src/rustc.log" ||
  { cat "$out/stage/install-src/rustc.log" >&2; exit 1; }
fix_modes "$root" meltemi/install
layer "$root" "$out/stage/artifacts.tar"
art_config="$(jq -cn --argjson labels "$labels" '{User: "65532:65532",
  Entrypoint: ["/meltemi/install"], Cmd: ["/out"], WorkingDir: "/", Labels: $labels}')"
oci_config linux amd64 "sha256:$(sha "$out/stage/artifacts.tar")" "$art_config" >"$out/stage/artifacts.json"
d="$out/oci/artifacts-$version"; mkdir -p "$d"; blob "$d" "$out/stage/artifacts.tar.gz" >/dev/null
image artifacts "$version" application/vnd.oci.image.config.v1+json "$out/stage/artifacts.json" '{}' \
  "[$(gz_layer_desc "$out/stage/artifacts.tar")]"

# --- push, verify by digest, print.
shown="${registry:-\${MELTEMI_REGISTRY\}}"
{
  echo "MELTEMI_REGISTRY=$registry"
  echo "MELTEMI_VERSION=$version"
} >"$out/images.env.tmp"
while read -r name tag digest total; do
  var="MELTEMI_$(echo "$name-$tag" | sed "s/-$version//; s/-/_/g" | tr a-z A-Z)_DIGEST"
  echo "$var=$digest" >>"$out/images.env.tmp"
  if [ -n "$registry" ] && [ "${MELTEMI_IMAGES_PUSH:-1}" != 0 ]; then
    skopeo copy -q --preserve-digests --dest-tls-verify="$tls" \
      "oci:$out/oci/$name-$tag:$tag" "docker://$registry/meltemi/$name:$tag"
    got="sha256:$(skopeo inspect --raw --tls-verify="$tls" "docker://$registry/meltemi/$name@$digest" | sha256sum | cut -d' ' -f1)"
    [ "$got" = "$digest" ] || { echo "images: $name:$tag is $got in the registry, built $digest" >&2; exit 1; }
  fi
  printf 'image: %s/meltemi/%s@%s  (:%s, %s bytes)\n' "$shown" "$name" "$digest" "$tag" "$total"
done <"$out/images.list.tmp"
echo "MELTEMI_WASM_MODULE_BLOB=$w_digest" >>"$out/images.env.tmp"
mv "$out/images.env.tmp" "$out/images.env"
mv "$out/images.list.tmp" "$out/images.list"

# deploy/ with the placeholders filled in: ${MELTEMI_REGISTRY} and ${MELTEMI_<IMAGE>_DIGEST}.
set -a; . "$out/images.env"; set +a
[ -n "$registry" ] || MELTEMI_REGISTRY='${MELTEMI_REGISTRY}'
vars="$(sed -n 's/^\([A-Z_]*\)=.*/${\1}/p' "$out/images.env" | tr '\n' ' ')"
(cd deploy && find . -name '*.yaml' -not -path './grafana/*' -printf '%P\n') | while read -r f; do
  mkdir -p "$out/deploy/$(dirname "$f")"
  envsubst "$vars" <"deploy/$f" >"$out/deploy/$f"
done
rm -rf "$out/stage"
echo "images: $out/images.env, $out/deploy/ ($(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }') s)"
