# parkcloud's container image (deploy/k8s runs it).
#   docker build -t parkgate/parkcloud:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t ... --push .
# At the repository root, not in deploy/: the build context must be the whole
# module anyway, and `docker build .` and CI builders find ./Dockerfile and
# ./.dockerignore there without -f.
# `go test ./deploy` checks the properties below (stages, static build,
# numeric non-root user, no latest tag) without a Docker engine: a cheap
# guard against edits that break them, not a build.

# Build stage: the Go that go.mod names. Static (no cgo): the binary needs no
# libc, so the run stage can be distroless/static.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Set by buildx for each --platform; plain docker build gets amd64.
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/parkcloud ./cloud/cmd/parkcloud

# Run stage: CA certificates (Stripe, Postgres verify-full, MQTT over TLS)
# and tzdata, no shell, no package manager. Migrations and SQL functions are
# embedded in the binary. The :nonroot tag is the variant whose default user
# is 65532; pin its digest (@sha256:...) in your registry mirror.
FROM gcr.io/distroless/static-debian12:nonroot AS run
COPY --from=build /out/parkcloud /usr/local/bin/parkcloud
# Numeric, so Kubernetes' runAsNonRoot can verify it without /etc/passwd;
# deploy/k8s/deployment.yaml runs as the same uid.
USER 65532:65532
EXPOSE 8080
# PARKGATE_HTTP_ADDR defaults to 127.0.0.1:8080, unreachable from outside the
# container: the k8s ConfigMap sets :8080, and so must `docker run -e`.
ENTRYPOINT ["/usr/local/bin/parkcloud"]
CMD ["serve"]
