# The wasm filter as an OCI image for Istio's WasmPlugin (`url: oci://...`): the "compat"
# image format Istio reads, one layer holding /plugin.wasm.
#
#   make build
#   docker build -f deploy/images/aigw-filter.Dockerfile -t ghcr.io/aigw/aigw-filter:0.1.0 .
#   docker push ghcr.io/aigw/aigw-filter:0.1.0
#
# (Or push the module as an OCI artifact: oras push <ref> plugin.wasm:application/vnd.module.wasm.content.layer.v1+wasm)
FROM scratch
LABEL org.opencontainers.image.title="aigw-filter" \
      org.opencontainers.image.description="aigw proxy-wasm filter for Envoy / Istio WasmPlugin"
COPY target/wasm32-wasip1/wasm/aigw_filter.wasm ./plugin.wasm
