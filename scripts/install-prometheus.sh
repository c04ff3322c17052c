#!/usr/bin/env bash
# Install Prometheus, Alertmanager and promtool from Debian when missing, without starting daemons.
set -euo pipefail
if command -v promtool >/dev/null && command -v prometheus >/dev/null && command -v prometheus-alertmanager >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "promtool/prometheus missing and not root: tests that need them will be skipped" >&2
  exit 0
fi
# Keep apt from starting the daemons (they would listen on 0.0.0.0).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
