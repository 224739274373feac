# Uploads (uploads/clamd.test.ts): the malware scan is tested against a real clamd from Debian's
# clamav-daemon. The test starts its own clamd on a free 127.0.0.1 port with its own config and a
# signature database it writes (the EICAR test signature); no signature download is needed. Stop
# any instance (and the freshclam updater) the package starts.
ci_apt_install clamav-daemon
if command -v systemctl >/dev/null 2>&1; then systemctl stop clamav-daemon clamav-freshclam >/dev/null 2>&1 || true; fi
if command -v service >/dev/null 2>&1; then service clamav-daemon stop >/dev/null 2>&1 || true; service clamav-freshclam stop >/dev/null 2>&1 || true; fi
