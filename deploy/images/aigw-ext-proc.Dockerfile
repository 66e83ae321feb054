# The ext_proc sidecar image (deploy/kustomize/base/deployment.yaml). It packages the release
# build of this machine (Debian 12, glibc 2.34 symbols, libgcc_s) on distroless' image of the
# same Debian (glibc, libgcc, CA certificates for OIDC, STS and Test connection), as the
# non-root user 65532 the Deployment runs as.
#
#   make build
#   docker build -f deploy/images/aigw-ext-proc.Dockerfile -t ghcr.io/aigw/aigw-ext-proc:0.1.0 .
#   docker push ghcr.io/aigw/aigw-ext-proc:0.1.0
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="aigw-ext-proc" \
      org.opencontainers.image.description="aigw ext_proc sidecar"
COPY target/release/aigw-ext-proc /usr/local/bin/aigw-ext-proc
USER 65532:65532
EXPOSE 9002 9003
ENTRYPOINT ["/usr/local/bin/aigw-ext-proc"]
