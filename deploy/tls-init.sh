#!/bin/sh
# One-shot step of deploy/compose.tls.yaml (service tls-init): copies what
# `make certs` (scripts/gen-certs) wrote into deploy/tls — the CA, the node
# certificates and keys, the admin token and the SASL/PLAIN users — into
# the strata-tls volume, owned by the strata image's user (65532), mode
# 0400, in a 0700 directory: the host's files belong to whoever ran make,
# whom the containers' user cannot read as. Prometheus (user nobody, 65534)
# gets its own copy of the CA and the admin token in /tls/prometheus.
# Every `up` copies again, so rotated files reach the volume; the nodes
# re-read their certificates when the files change.
set -eu

src=${TLS_SOURCE:-/tls-src}
dst=${TLS_TARGET:-/tls}
owner=65532:65532
umask 077

for f in ca.crt admin-token users node-1.crt node-1.key; do
	if [ ! -s "$src/$f" ]; then
		echo "tls-init: $src/$f is missing: run \`make certs\` first (scripts/gen-certs writes deploy/tls)" >&2
		exit 1
	fi
done
mkdir -p "$dst" "$dst/prometheus"
for f in "$src"/ca.crt "$src"/node-*.crt "$src"/node-*.key "$src"/admin-token "$src"/users; do
	name=$(basename "$f")
	# Key before certificate, through a rename: a node never reads a
	# half-written file.
	cp "$f" "$dst/.$name.tmp"
	chown "$owner" "$dst/.$name.tmp"
	chmod 0400 "$dst/.$name.tmp"
	mv "$dst/.$name.tmp" "$dst/$name"
done
chown "$owner" "$dst"
chmod 0711 "$dst" # prometheus reaches its own directory below
for f in ca.crt admin-token; do
	cp "$src/$f" "$dst/prometheus/$f"
	chown 65534:65534 "$dst/prometheus/$f"
	chmod 0400 "$dst/prometheus/$f"
done
chown 65534:65534 "$dst/prometheus"
chmod 0700 "$dst/prometheus"
echo "tls-init: certificates, admin token and users copied to $dst"
