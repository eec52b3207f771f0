# Meridian's image: the binary built on the host (`cargo build --release`) on a Debian 12 base.
#
#   docker build -t meridian .                                       # base from a registry
#   docker build --build-arg BASE=meridian-base:bookworm -t meridian . # base built locally
#                                                                    # (tests/compose/base-image.sh)
#
# No Rust on the host? Dockerfile.source builds the binary inside a Rust image (registry and
# crates.io needed). Keep the two final stages alike.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
# dig for clients, busybox httpd for the demo's data centers, curl for the admin API, etcd and
# etcdctl for the demo's etcd members, openssl (with ca-certificates) for the demo's
# certificates. The local base already has them; a registry base gets them from Debian.
RUN if ! command -v dig >/dev/null || ! command -v busybox >/dev/null || ! command -v curl >/dev/null \
      || ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null || ! command -v openssl >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends bind9-dnsutils busybox curl ca-certificates \
        openssl etcd-server etcd-client \
      && rm -rf /var/lib/apt/lists/*; \
    fi
COPY target/release/meridian /usr/local/bin/meridian
COPY meridian.yaml /etc/meridian/meridian.yaml
COPY zones/ /etc/meridian/zones/
COPY geoip/ /etc/meridian/geoip/
WORKDIR /etc/meridian
EXPOSE 53/udp 53/tcp 8053/tcp
ENTRYPOINT ["/usr/local/bin/meridian"]
CMD ["serve", "--config", "/etc/meridian/meridian.yaml", "--listen", "0.0.0.0:53", "--admin-listen", "0.0.0.0:8053"]
