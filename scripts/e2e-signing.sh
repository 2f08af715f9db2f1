#!/usr/bin/env bash
# End-to-end signing, checked by code nobody in this project wrote:
#  - rootstrap builds Debian trixie, pushes it to Debian's docker-registry on
#    127.0.0.1 and signs it (build --sign-key): the sigstore crate
#    (tools/cosign-interop) verifies the signature and the SPDX, CycloneDX
#    and provenance attestations; Docker pulls and runs the image;
#  - the sigstore crate signs an image, and rootstrap verify accepts it;
#  - wrong keys, an unsigned image and a re-tagged image are refused by both;
#  - skopeo, under a signedBy policy (GPG "simple signing", the scheme
#    Debian's skopeo checks), accepts the image rootstrap signed into a
#    lookaside directory and refuses another key's policy, an unsigned and a
#    re-tagged image; and under a sigstoreSigned policy where the installed
#    skopeo verifies sigstore signatures (Debian's build has it disabled:
#    the script says so and does not count it).
# Needs: root, dockerd running (scripts/dockerd.sh start), docker-registry,
# a Rust toolchain (the sigstore-based checker is built here).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
. scripts/registry.sh
work=$(mktemp -d /var/tmp/rootstrap-e2e-signing.XXXXXX)
port=$(free_port)
registry_pid=
cleanup() {
    [ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null || true
    docker rmi "127.0.0.1:$port/signed/debian:trixie" "127.0.0.1:$port/signed/debian:moved" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
export ROOTSTRAP_CACHE_DIR=${ROOTSTRAP_CACHE_DIR:-$work/cache}
fail=0

echo "building the sigstore-crate checker (tools/cosign-interop)"
cargo build --quiet --manifest-path tools/cosign-interop/Cargo.toml
interop=$PWD/tools/cosign-interop/target/debug/cosign-interop
rootstrap_bin
start_registry "$work/registry" "$port"
reg=127.0.0.1:$port

export COSIGN_PASSWORD="e2e password"
"$rs" key generate --output-prefix "$work/cosign" >/dev/null
"$rs" key generate --output-prefix "$work/other" >/dev/null

ref=$reg/signed/debian:trixie
"$rs" --progress plain build recipes/debian-trixie.toml --lock "$work/trixie.lock" \
    --output "registry:$ref" --sign-key "$work/cosign.key" | tee "$work/build.out"
digest=$(awk '/^registry:/ {print $2}' "$work/build.out")
check "build --sign-key prints the signature it pushed" grep -q "^signed $reg/signed/debian@$digest  $reg/signed/debian:sha256-${digest#sha256:}.sig" "$work/build.out"

check "the sigstore crate verifies rootstrap's signature" "$interop" verify "$ref" "$work/cosign.pub"
"$interop" verify-attestations "$ref" "$work/cosign.pub" | tee "$work/att.out" || true
for kind in https://spdx.dev/Document https://cyclonedx.org/bom https://slsa.dev/provenance/v1; do
    check "the sigstore crate verifies the $kind attestation" grep -qx "attestation: $kind" "$work/att.out"
done
check "the sigstore crate refuses another key" not "$interop" verify "$ref" "$work/other.pub"
check "rootstrap verify --attestation" "$rs" verify "$ref" --key "$work/cosign.pub" --attestation

docker pull -q "$ref" >/dev/null
check "docker runs the signed image" test "$(docker run --rm "$ref" echo ok)" = ok

# The other direction: the sigstore crate signs, rootstrap verifies.
"$rs" --progress plain build recipes/debian-trixie.toml --output "registry:$reg/by/sigstore:1" >/dev/null
check "rootstrap verify: unsigned image → exit 1" exit_is 1 "$rs" verify "$reg/by/sigstore:1" --key "$work/cosign.pub"
"$interop" sign "$reg/by/sigstore:1" "$work/cosign.key"
check "rootstrap verifies what the sigstore crate signed" "$rs" verify "$reg/by/sigstore:1" --key "$work/cosign.pub"
check "rootstrap refuses it with another key (exit 1)" exit_is 1 "$rs" verify "$reg/by/sigstore:1" --key "$work/other.pub"

# Re-tagging: the tag now names an unsigned image.
"$rs" --progress plain build recipes/debian-trixie.toml --slim --output "registry:$reg/by/sigstore:1" >/dev/null
check "rootstrap verify of a re-tagged image → exit 1" exit_is 1 "$rs" verify "$reg/by/sigstore:1" --key "$work/cosign.pub"
check "the sigstore crate refuses the re-tagged image" not "$interop" verify "$reg/by/sigstore:1" "$work/cosign.pub"

# skopeo with GPG "simple signing": rootstrap signs into a lookaside
# directory, skopeo's signedBy policy checks it.
export GNUPGHOME=$work/gnupg
mkdir -m 700 "$GNUPGHOME"
for who in signer stranger; do
    gpg --batch --quiet --passphrase '' --quick-gen-key "rootstrap e2e $who <$who@rootstrap.invalid>" default default never 2>/dev/null
    gpg --batch --armor --export "$who@rootstrap.invalid" >"$work/$who.pub.asc"
done
gpg --batch --armor --export-secret-keys signer@rootstrap.invalid >"$work/signer.sec.asc"
"$rs" sign "$ref" --gpg-key "$work/signer.sec.asc" --lookaside "$work/lookaside"
mkdir -p "$work/gpg-registries.d"
printf 'default-docker:\n  lookaside: file://%s\n' "$work/lookaside" >"$work/gpg-registries.d/default.yaml"
gpg_policy() { # KEYFILE
    printf '{"default":[{"type":"reject"}],"transports":{"docker":{"%s":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"%s"}]}}}' "$reg" "$1"
}
gpg_policy "$work/signer.pub.asc" >"$work/gpg-policy.json"
gpg_policy "$work/stranger.pub.asc" >"$work/gpg-policy-other.json"
gpg_copy() { # POLICY REF
    rm -rf "$work/skopeo-out"
    skopeo --policy "$1" --registries.d "$work/gpg-registries.d" copy -q --src-tls-verify=false "docker://$2" "dir:$work/skopeo-out"
}
check "skopeo (signedBy policy) accepts the image rootstrap signed with GPG" gpg_copy "$work/gpg-policy.json" "$ref"
check "skopeo refuses it under another key's policy" not gpg_copy "$work/gpg-policy-other.json" "$ref"
check "skopeo refuses an unsigned image" not gpg_copy "$work/gpg-policy.json" "$reg/by/sigstore:1"
docker tag "$ref" "$reg/signed/debian:moved"
docker push -q "$reg/signed/debian:moved" >/dev/null
check "skopeo refuses the signed image under another tag (the signature names :trixie)" not gpg_copy "$work/gpg-policy.json" "$reg/signed/debian:moved"

# skopeo with a sigstoreSigned policy, where the installed build supports it.
mkdir -p "$work/registries.d"
printf 'default-docker:\n  use-sigstore-attachments: true\n' >"$work/registries.d/default.yaml"
policy() { # KEYFILE
    printf '{"default":[{"type":"reject"}],"transports":{"docker":{"%s":[{"type":"sigstoreSigned","keyPath":"%s","signedIdentity":{"type":"matchRepository"}}]}}}' "$reg" "$1"
}
policy "$work/cosign.pub" >"$work/policy.json"
policy "$work/other.pub" >"$work/policy-other.json"
skopeo_copy() { # POLICY REF
    rm -rf "$work/skopeo-out"
    skopeo --policy "$1" --registries.d "$work/registries.d" copy -q --src-tls-verify=false "docker://$2" "dir:$work/skopeo-out" 2>"$work/skopeo.err"
}
if skopeo_copy "$work/policy.json" "$ref"; then
    echo "PASS skopeo copy accepts the signed image under a sigstoreSigned policy"
    check "skopeo refuses it under another key's policy" not skopeo_copy "$work/policy-other.json" "$ref"
    check "skopeo refuses an unsigned image" not skopeo_copy "$work/policy.json" "$reg/by/sigstore:1"
elif grep -q "sigstore disabled" "$work/skopeo.err"; then
    echo "NOTE skopeo $(skopeo --version | awk '{print $3}'): this build has sigstore verification disabled ($(grep -o 'Debian-local change: sigstore disabled' "$work/skopeo.err" | head -1)); not counted"
else
    echo "FAIL skopeo copy of the signed image: $(cat "$work/skopeo.err")"
    fail=1
fi
exit $fail
