# Sourced by .ci/run before the tests. Defines `ci_apt_install <package>...`: installs Debian
# packages the tests need (once; `apt-get update` only when something is missing).
# Each later file in .ci/setup.d/ installs and, where the tests do not start it themselves,
# starts what its part of the suite needs, on 127.0.0.1.
ci_apt_updated=""
ci_apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$ci_apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    ci_apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
