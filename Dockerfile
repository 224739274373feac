# One image for every Troupe role: `docker run troupe start|runner|gateway|migrate|preview …`
#
# Multi-platform (the native addons all ship linux-arm64 builds; bin/arm64.test.ts checks):
#   docker buildx build --platform linux/amd64,linux/arm64 -t troupe:latest .
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    TROUPE_DATA_DIR=/var/lib/troupe \
    TROUPE_HOST=0.0.0.0 \
    TROUPE_PORT=8080 \
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=32768
# pg_dump/pg_restore for `troupe admin backup|restore` and scheduled backups: PostgreSQL's own
# repository (Debian's client is 15; pg_dump must be at least the server's major version)
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && install -d /usr/share/postgresql-common/pgdg \
 && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc https://www.postgresql.org/media/keys/ACCC4CF8.asc \
 && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" > /etc/apt/sources.list.d/pgdg.list \
 && apt-get update && apt-get install -y --no-install-recommends postgresql-client-17 \
 && apt-get purge -y curl && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY bin/lockfile-stubs.mjs bin/pglite-template.mjs bin/build-web.mjs ./bin/
# patches/: fixes to dependencies applied by patch-package on install (see patches/README.md)
COPY patches ./patches
# the lock lists only the platform binaries of the machine that wrote it: add the others (argon2's,
# esbuild's … for arm64) so `npm ci` installs the ones for the platform being built
RUN node bin/lockfile-stubs.mjs && npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY runtime ./runtime
COPY entities ./entities
COPY skills ./skills
COPY gateway ./gateway
COPY preview ./preview
COPY uploads ./uploads
COPY tsconfig.json deno.json ./
# the long-running roles run one bundle of the sources (bin/troupe.mjs); build it now, while /app is writable
RUN node bin/troupe.mjs start --help > /dev/null
RUN mkdir -p /var/lib/troupe && chown node:node /var/lib/troupe
USER node
EXPOSE 8080 34431
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.TROUPE_PORT||8080)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "--max-semi-space-size=32", "bin/troupe.mjs"]
CMD ["start"]
