#!/usr/bin/env bash
# Validates the SBOMs rootstrap writes with the reference validators from
# PyPI: spdx-tools' `pyspdxtools` (SPDX 2.3) and cyclonedx-python-lib's
# strict JSON-schema validator (CycloneDX 1.5).
#   Builds recipes/debian-trixie.toml from the host's mirror into a
#   docker-archive and an OCI layout, then validates the documents written
#   next to the archive, those attached to the layout as OCI artifacts
#   (checking their subject is the image manifest), and `rootstrap sbom`'s.
#   Also checks `rootstrap diff` finds the two outputs identical. Then the
#   same validation for an Alpine image built from the local fixture
#   repository (examples/make-apk-repo.rs, as e2e-alpine.sh does).
# Env: ROOTSTRAP=path to a rootstrap binary (default: build --release);
#      SBOM_VENV=virtualenv to (re)use (default: /tmp/rootstrap-sbom-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
work_dir rootstrap-sbom

venv=${SBOM_VENV:-/tmp/rootstrap-sbom-venv}
if [ ! -x "$venv/bin/pyspdxtools" ]; then
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q spdx-tools 'cyclonedx-python-lib[json-validation]'
fi
cat > "$work/validate-cdx.py" <<'PY'
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

validator = JsonStrictValidator(SchemaVersion.V1_5)
failed = False
for path in sys.argv[1:]:
    with open(path) as f:
        error = validator.validate_str(f.read())
    if error is not None:
        print(f"{path}: {error}")
        failed = True
sys.exit(1 if failed else 0)
PY
spdx_ok() { "$venv/bin/pyspdxtools" -i "$1" >"$work/pyspdxtools.log" 2>&1 || { cat "$work/pyspdxtools.log"; return 1; }; }
cdx_ok() { "$venv/bin/python" "$work/validate-cdx.py" "$@"; }

if [ -z "${ROOTSTRAP:-}" ]; then
    cargo build --release --quiet --bin rootstrap --example make-apk-repo
    ROOTSTRAP=$PWD/target/release/rootstrap
    make_apk_repo=$PWD/target/release/examples/make-apk-repo
else
    cargo build --quiet --example make-apk-repo
    make_apk_repo=$PWD/target/debug/examples/make-apk-repo
fi
rs=$ROOTSTRAP
mirror=$(bash scripts/host-mirror.sh)
export ROOTSTRAP_CACHE_DIR=${ROOTSTRAP_CACHE_DIR:-$work/cache}

tag=rootstrap-sbom-check/debian:trixie
"$rs" --progress plain build recipes/debian-trixie.toml --mirror "$mirror" -t "$tag" \
    --output "docker-archive:$work/trixie.tar" --output "oci:$work/oci"

# Next to the docker archive.
check "sidecar SPDX validates" spdx_ok "$work/trixie.tar.spdx.json"
check "sidecar CycloneDX validates" cdx_ok "$work/trixie.tar.cdx.json"

# Inside the OCI layout: artifacts whose subject is the image manifest.
"$venv/bin/python" - "$work/oci" "$work" <<'PY'
import json, os, sys
layout, out = sys.argv[1], sys.argv[2]
blob = lambda d: os.path.join(layout, "blobs", "sha256", d.split(":", 1)[1])
index = json.load(open(os.path.join(layout, "index.json")))
# index.json lists the image alone; its entry names the list of its referrers.
images = index["manifests"]
assert len(images) == 1, images
referrers = json.load(open(blob(images[0]["annotations"]["org.rootstrap.referrers"])))
artifacts = referrers["manifests"]
assert sorted(a["artifactType"] for a in artifacts) == ["application/spdx+json", "application/vnd.cyclonedx+json"], artifacts
for a in artifacts:
    manifest = json.load(open(blob(a["digest"])))
    assert manifest["subject"]["digest"] == images[0]["digest"], manifest
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert len(manifest["layers"]) == 1
    ext = "spdx" if a["artifactType"] == "application/spdx+json" else "cdx"
    with open(os.path.join(out, f"artifact.{ext}.json"), "wb") as f:
        f.write(open(blob(manifest["layers"][0]["digest"]), "rb").read())
print("artifacts refer to", images[0]["digest"])
PY
check "OCI artifact SPDX validates" spdx_ok "$work/artifact.spdx.json"
check "OCI artifact CycloneDX validates" cdx_ok "$work/artifact.cdx.json"
quiet() { "$@" >/dev/null; }
check "inspect works with SBOMs attached" quiet "$rs" inspect "oci:$work/oci"

# `rootstrap sbom` agrees with what the build wrote.
"$rs" sbom "docker-archive:$work/trixie.tar" --format spdx -o "$work/cli.spdx.json"
"$rs" sbom "docker-archive:$work/trixie.tar" --format cyclonedx -o "$work/cli.cdx.json"
# The build also knows each .deb's SHA-256 (from the verified plan), which
# an image alone does not record: equal apart from those, and the build's
# documents carry one for every package.
same_but_checksums() { # kind, from-image, from-build
    python3 - "$@" <<'PY'
import json, sys
kind, cli, built = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
items, field, want = ("packages", "checksums", "SHA256") if kind == "spdx" else ("components", "hashes", "SHA-256")
def algs(p):
    return [c.get("algorithm", c.get("alg")) for c in p.get(field, [])]
pkgs = [p for p in built[items] if "pkg:deb/" in json.dumps(p)]
missing = [p["name"] for p in pkgs if want not in algs(p)]
if missing or not pkgs:
    sys.exit(f"no {want} for: {missing[:5]}")
for doc in (cli, built):
    for p in doc[items]:
        p.pop(field, None)
sys.exit(0 if cli == built else "documents differ beyond the checksums")
PY
}
check "rootstrap sbom SPDX = build's, which adds each .deb's SHA-256" \
    same_but_checksums spdx "$work/cli.spdx.json" "$work/trixie.tar.spdx.json"
check "rootstrap sbom CycloneDX = build's, which adds each .deb's SHA-256" \
    same_but_checksums cdx "$work/cli.cdx.json" "$work/trixie.tar.cdx.json"
packages=$("$rs" inspect --json "docker-archive:$work/trixie.tar" | "$venv/bin/python" -c 'import json,sys; print(len(json.load(sys.stdin)["packages"]))')
in_sbom=$("$venv/bin/python" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["components"]))' "$work/cli.cdx.json")
check "SBOM lists every installed package ($packages)" test "$packages" = "$in_sbom"
with_license=$("$venv/bin/python" -c 'import json,sys; print(sum(1 for p in json.load(open(sys.argv[1]))["packages"] if p["licenseDeclared"] != "NOASSERTION"))' "$work/cli.spdx.json")
echo "packages with a declared license: $with_license of $packages"

check "rootstrap diff: archive and layout are identical" quiet "$rs" diff "docker-archive:$work/trixie.tar" "oci:$work/oci"

# Alpine, from the fixture repository served on 127.0.0.1.
"$make_apk_repo" "$work/apk-mirror"
serve_dir "$work/apk-mirror" "$work/http.log"
"$rs" --progress plain build recipes/alpine-3.20.toml --mirror "http://127.0.0.1:$port" \
    --keys "$work/apk-mirror/keys" --output "docker-archive:$work/alpine.tar"
check "alpine: SPDX validates" spdx_ok "$work/alpine.tar.spdx.json"
check "alpine: CycloneDX validates" cdx_ok "$work/alpine.tar.cdx.json"
check "alpine: purls are pkg:apk/alpine with a SHA-1" "$venv/bin/python" -c '
import json, sys
bom = json.load(open(sys.argv[1]))
assert bom["components"], "no components"
for c in bom["components"]:
    assert c["purl"].startswith("pkg:apk/alpine/"), c["purl"]
    assert c["hashes"][0]["alg"] == "SHA-1", c
' "$work/alpine.tar.cdx.json"

if docker info >/dev/null 2>&1; then
    check "docker load of the archive" quiet docker load -i "$work/trixie.tar"
    docker rmi "$tag" >/dev/null 2>&1 || true
fi

exit $fail
