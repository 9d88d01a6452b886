# syntax=docker/dockerfile:1
#
# trainfeed: one static binary on a minimal base, run as a non-root user.
#   docker build -t trainfeed .
#   docker run --rm trainfeed fetch --nats nats://nats:4222
# docker-compose.yml runs a whole pipeline on a 3-node NATS cluster with it.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/trainfeed ./cmd/trainfeed \
 && mkdir -p /out/data/out

# distroless/static: CA certificates, time zones and a nonroot user (65532);
# no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/trainfeed /usr/local/bin/trainfeed
# /data/out belongs to the nonroot user, and so does a named volume mounted
# there (docker copies the ownership into a new volume).
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/trainfeed"]
CMD ["--help"]
