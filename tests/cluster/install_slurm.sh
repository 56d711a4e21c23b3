#!/usr/bin/env bash
# Install a single-node SLURM (controller + compute daemon + client) and munge from
# Debian packages, if they are missing. Needs root (or passwordless sudo) and apt.
# Idempotent: does nothing when slurmctld, slurmd, sbatch and munged are present.
set -euo pipefail

have_all() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v squeue >/dev/null \
        && command -v munged >/dev/null
}

versions() {  # package versions (sbatch --version would need a slurm.conf)
    dpkg-query -W -f '${Package} ${Version}; ' slurmctld slurmd slurm-client munge 2>/dev/null || true
}

if have_all; then
    echo "install_slurm: SLURM and munge already installed ($(versions))"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install_slurm: SLURM is not installed and installing it needs root (apt-get)" >&2
        exit 2
    fi
fi
if ! command -v apt-get >/dev/null; then
    echo "install_slurm: SLURM is not installed and there is no apt-get to install it" >&2
    exit 2
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# The packages' postinst scripts try to start services; without systemd/init they
# only warn. policy-rc.d keeps them from starting anything (start_slurm.sh does).
POLICY=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod +x "$POLICY"
    created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT
$SUDO apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
have_all || { echo "install_slurm: installation finished but SLURM commands are missing" >&2; exit 1; }
echo "install_slurm: installed $(versions)"
