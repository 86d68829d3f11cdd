# tadak: vote-ingestion producer and consumer.
#
#   docker build -t tadak .
#   docker compose up        (see docker-compose.yml)
#
# Stage 1 builds the two binaries with the Debian -dev packages; stage 2 is a
# slim runtime with only the shared libraries they link against.

FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        build-essential pkg-config \
        librdkafka-dev libhiredis-dev libpq-dev libjson-c-dev \
        libmicrohttpd-dev uuid-dev libssl-dev libjwt-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)" \
 && test -x build/tadak-producer \
 && test -x build/tadak-consumer

FROM debian:bookworm-slim AS runtime
# curl is only for the container healthchecks (GET /healthz, /metrics).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        librdkafka1 libhiredis0.14 libpq5 libjson-c5 libmicrohttpd12 libuuid1 libssl3 libjwt0 \
        ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin tadak
COPY --from=build /src/build/tadak-producer /src/build/tadak-consumer /usr/local/bin/
COPY sql/ /usr/share/tadak/sql/
USER tadak
# 8000: producer HTTP API; 9100: consumer metrics.
EXPOSE 8000 9100
CMD ["tadak-producer", "serve", "--listen", "0.0.0.0:8000"]
