# App store (skills/store): the registry tests start Debian's docker-registry themselves, on a free
# 127.0.0.1 port with their own config and storage. Stop any instance the package starts.
ci_apt_install docker-registry
if command -v systemctl >/dev/null 2>&1; then systemctl stop docker-registry >/dev/null 2>&1 || true; fi
if command -v service >/dev/null 2>&1; then service docker-registry stop >/dev/null 2>&1 || true; fi
