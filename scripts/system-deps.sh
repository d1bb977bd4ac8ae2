#!/usr/bin/env bash
# Optional system packages that harden the verifier's sandbox (bubblewrap, libseccomp2). Installed when we are
# root with apt; otherwise the verifier runs without that layer and says so in a warning.
set -u
command -v bwrap >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q libseccomp.so.2 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -qq bubblewrap libseccomp2 >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap libseccomp2 >/dev/null 2>&1; }) \
        || echo "note: could not install bubblewrap; the verifier will warn that this sandbox layer is missing"
else
    echo "note: bubblewrap (bwrap) is not installed; install it for the verifier's strongest sandbox"
fi
exit 0
