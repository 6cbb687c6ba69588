# The secrets-prefetch agent image: the static binary on an empty base.
#
# Build it with `make image`, not `docker build .`: the binary is built on the
# host (CGO_ENABLED=0, static, stripped) and staged with the host's CA
# certificates and a two-line /etc/passwd and /etc/group in .cache/image/,
# which is this file's build context. There is no builder stage: it would
# need a Go image from a registry, and the binary needs nothing a builder
# image would add.
FROM scratch

# The agent calls AWS over TLS; scratch has no trust store of its own.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# Names for the numeric user and group below (ps, ls -n and audit logs).
COPY passwd group /etc/
COPY secrets-prefetch /secrets-prefetch

# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532

# 127.0.0.1:2773 by default: reachable from containers that share the
# network namespace (a Kubernetes pod, an ECS task in awsvpc mode).
EXPOSE 2773

ENTRYPOINT ["/secrets-prefetch", "agent"]

# /ping answers 200 once the prefetch is done. The start period covers a
# slow prefetch; Kubernetes ignores HEALTHCHECK (use the startupProbe of
# examples/kubernetes/), ECS uses its task definition's healthCheck.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
	CMD ["/secrets-prefetch", "healthcheck"]
