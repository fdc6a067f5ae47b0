# popdns container image: a static binary on distroless, run as non-root.
#
#   docker build -t popdns .
#   docker run --rm -p 5353:5353/udp -p 5353:5353/tcp -p 8053:8053 popdns
#   dig @127.0.0.1 -p 5353 www.example.test
#
# With no arguments the image serves the built-in demo zone, and its status
# page to anyone (-http-public-without-token, below): the demo's zones and
# PoPs are public anyway. To serve your own zones, mount a configuration,
# a zone directory and a token file, and name the config (the -listen/-http
# defaults below are replaced by your arguments, so the config must listen
# on 0.0.0.0 itself):
#
#   head -c 24 /dev/urandom | base64 > read.token
#   docker run --rm -p 5353:5353/udp -p 5353:5353/tcp -p 8053:8053 \
#     -v "$PWD/popdns.yaml:/etc/popdns/popdns.yaml:ro" \
#     -v "$PWD/zones:/var/lib/popdns/zones:ro" \
#     -v "$PWD/read.token:/etc/popdns/read.token:ro" \
#     popdns -config /etc/popdns/popdns.yaml
#   curl -H "Authorization: Bearer $(cat read.token)" http://127.0.0.1:8053/status
#
# with, in popdns.yaml: listen: ["0.0.0.0:5353"], http: 0.0.0.0:8053,
# zones: /var/lib/popdns/zones and read_token_file: read.token (relative to
# the config's directory). An http address beyond loopback with no token
# file is refused at start, unless the config says
# http_public_without_token: true; /healthz, /readyz and /metrics never need
# a token. See docs/configuration.md, "Hardening: HTTP".
#
# Serving on port 53. The process runs as the unprivileged user nonroot
# (65532), which the kernel normally keeps off ports below 1024. Set
# listen: [":53"] (or 0.0.0.0:53) in the config and publish -p 53:53/udp
# -p 53:53/tcp, then pick one of:
#
#   1. The file capability. The build stage below runs
#      `setcap cap_net_bind_service=+ep` on the binary, so non-root may bind
#      port 53 as long as the container keeps NET_BIND_SERVICE in its
#      bounding set. Docker keeps it by default; with --cap-drop ALL add it
#      back: --cap-drop ALL --cap-add NET_BIND_SERVICE. A binary with a file
#      capability refuses to start ("operation not permitted") in a container
#      that lacks that capability, so for such environments build with
#      --build-arg SETCAP=0 and use option 2.
#      COPY keeps the capability (an extended attribute) only when the image
#      is built with BuildKit (the default builder since Docker 23); the
#      legacy builder silently drops it.
#   2. The sysctl, no capability at all:
#      --sysctl net.ipv4.ip_unprivileged_port_start=53
#      It is per network namespace (so not with --network host) and covers
#      IPv6 too. Docker 20.10+ already sets it to 0 for containers on its own
#      networks; Kubernetes allows it as a safe sysctl in the pod's
#      securityContext.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
# SETCAP=1 gives the binary cap_net_bind_service (see option 1 above).
ARG SETCAP=1
# VERSION is what `popdns version` prints.
ARG VERSION=dev
RUN if [ "$SETCAP" = 1 ]; then \
      apt-get update && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libcap2-bin && \
      rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/popdns ./cmd/popdns && \
    if [ "$SETCAP" = 1 ]; then setcap cap_net_bind_service=+ep /out/popdns; fi && \
    mkdir -p /out/etc/popdns /out/var/lib/popdns/zones /out/var/lib/popdns/state

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="popdns" \
      org.opencontainers.image.description="A latency-aware GeoDNS authoritative server" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/popdns/popdns"
COPY --from=build /out/popdns /usr/local/bin/popdns
COPY --from=build --chown=65532:65532 /out/etc/popdns /etc/popdns
COPY --from=build --chown=65532:65532 /out/var/lib/popdns /var/lib/popdns
USER 65532:65532
# The configuration file (popdns.yaml), the zone files, and state_dir
# (auto serials, the operators' overrides; set state_dir:
# /var/lib/popdns/state in your configuration to keep them).
VOLUME ["/etc/popdns", "/var/lib/popdns/zones", "/var/lib/popdns/state"]
EXPOSE 5353/udp 5353/tcp 8053
ENTRYPOINT ["/usr/local/bin/popdns"]
# The built-in demo, reachable from outside the container, its status page
# served without a token on purpose (the demo has nothing private; your own
# configuration should name a token file instead, see above). /healthz and
# /readyz on port 8053 are the liveness and readiness probes; the
# HEALTHCHECK asks /readyz with popdns itself (the image has no shell or
# curl). A configuration with another http port needs
# --health-cmd '/usr/local/bin/popdns healthcheck -url 127.0.0.1:PORT'.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/popdns", "healthcheck", "-url", "127.0.0.1:8053"]
CMD ["-listen", "0.0.0.0:5353", "-http", "0.0.0.0:8053", "-http-public-without-token"]
