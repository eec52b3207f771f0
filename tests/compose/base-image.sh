#!/usr/bin/env bash
# Builds the local base image `meridian-base:bookworm` from Debian's packages when it is missing
# or older than the demo needs (no etcd in it), with no registry: debootstrap a minimal Debian 12
# and import it into Docker.
#
#   tests/compose/base-image.sh [--force]
#
# Users with a registry do not need this: the Dockerfile's default base is debian:bookworm-slim.
set -euo pipefail
image=${MERIDIAN_BASE_IMAGE:-meridian-base:bookworm}
if [ "${1:-}" != "--force" ] && docker image inspect "$image" >/dev/null 2>&1; then
  if docker run --rm "$image" which etcd etcdctl >/dev/null 2>&1; then
    echo "base image $image present"
    exit 0
  fi
  echo "base image $image has no etcd: building it again"
fi
sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
if ! command -v debootstrap >/dev/null 2>&1; then
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q debootstrap
fi
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d /tmp/meridian-rootfs.XXXX)
trap '$sudo rm -rf "$root"' EXIT
echo "debootstrap bookworm from $mirror into $root"
# ca-certificates for HTTPS checks, bind9-dnsutils for dig, busybox for the demo data centers'
# HTTP servers, curl for the admin API, etcd-server and etcd-client for the demo's etcd members
# and etcdctl.
$sudo debootstrap --variant=minbase \
  --include=ca-certificates,bind9-dnsutils,busybox,curl,etcd-server,etcd-client \
  bookworm "$root/rootfs" "$mirror" >/dev/null
$sudo tar -C "$root/rootfs" -c . | docker import - "$image" >/dev/null
echo "built $image"
