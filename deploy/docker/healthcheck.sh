#!/bin/bash
# Container HEALTHCHECK without curl or any extra package: bash's /dev/tcp is enough.
#   arcana-healthcheck http [PATH]  GET PATH (default /health/ready) on the REST port taken from
#                                   ARCANA_HTTP_ADDR (default 8080) and require HTTP 200
#   arcana-healthcheck tcp [PORT]   require a listener on PORT (default: the port of
#                                   ARCANA_GRPC_ADDR) - the internal gRPC layers
# Always probes 127.0.0.1, so the server must listen on 0.0.0.0 or loopback (the default).
# Kubernetes does not use this: the Helm chart declares native HTTP and gRPC probes.
set -euo pipefail
mode=${1:-http}
case $mode in
  http)
    path=${2:-/health/ready}
    addr=${ARCANA_HTTP_ADDR:-0.0.0.0:8080}
    exec 3<>"/dev/tcp/127.0.0.1/${addr##*:}"
    printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: arcana-healthcheck\r\nConnection: close\r\n\r\n' "$path" >&3
    read -r -t 5 _ status _ <&3
    [ "$status" = 200 ] || { echo "GET $path answered ${status:-nothing}" >&2; exit 1; }
    ;;
  tcp)
    addr=${ARCANA_GRPC_ADDR:-0.0.0.0:50051}
    port=${2:-${addr##*:}}
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    ;;
  *)
    echo "usage: arcana-healthcheck http [PATH] | tcp [PORT]" >&2
    exit 2
    ;;
esac
