# tadak: vote-ingestion producer and consumer.
#
#   docker build -t tadak .
#   docker compose up        (see docker-compose.yml)
#
# Stage 1 builds the two binaries with the Debian -dev packages; stage 2 is a
# slim runtime with only the shared libraries they link against.

FROM debian:bookworm AS build
# bookworm's librdkafka (2.0.2) and hiredis (0.14, no TLS) are too old:
# scripts/setup builds Debian's source packages of librdkafka 2.14.2 and
# hiredis 1.2.0 (from forky/sid) into /opt/tadak/deps, which the binaries
# find by their rpath and the runtime stage copies as is.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        build-essential pkg-config dpkg-dev ca-certificates debian-archive-keyring \
        libpq-dev libjson-c-dev libmicrohttpd-dev uuid-dev libssl-dev libjwt-dev \
        libsasl2-dev libzstd-dev liblz4-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
ENV TADAK_CACHE_DIR=/opt/tadak
WORKDIR /src
COPY . .
RUN scripts/setup libs \
 && make -j"$(nproc)" \
 && test -x build/tadak-producer \
 && test -x build/tadak-consumer

FROM debian:bookworm-slim AS runtime
# curl is only for the container healthchecks (GET /healthz, /metrics).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        libpq5 libjson-c5 libmicrohttpd12 libuuid1 libssl3 libjwt0 \
        libsasl2-2 libzstd1 liblz4-1 zlib1g ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --shell /usr/sbin/nologin tadak
COPY --from=build /opt/tadak/deps /opt/tadak/deps
COPY --from=build /src/build/tadak-producer /src/build/tadak-consumer /usr/local/bin/
COPY sql/ /usr/share/tadak/sql/
USER tadak
# 8000: producer HTTP API; 9100: consumer metrics.
EXPOSE 8000 9100
CMD ["tadak-producer", "serve", "--listen", "0.0.0.0:8000"]
