#!/usr/bin/env bash
# A short check on a machine with a real NVIDIA GPU (this workplace lends one through its `device`
# tool; CI never has one): labdeck's GPU inventory and the GPU sample on the local target.
#
#     bash scripts/gpu-check.sh            (from the repository root; writes gpu-check.log to $OUT
#                                           or /tmp/gpu-check)
#
# Needs python3 with torch, pyyaml, click, pathspec and rich (a CUDA image has them); labdeck runs
# from this checkout (PYTHONPATH), nothing is installed. The sample runs in a copy of sample_project.
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
exec > >(tee "$out/gpu-check.log") 2>&1
export PYTHONPATH=$repo PYTHONUNBUFFERED=1
labdeck() { python3 -m tui.entry "$@"; }
step() { printf '\n== %s\n' "$*"; }

step "the machine"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv
python3 -c 'import sys, torch; print("python", sys.version.split()[0], "torch", torch.__version__,
"cuda", torch.version.cuda, "available", torch.cuda.is_available())'

work=$(mktemp -d)
cp -r "$repo/sample_project" "$work/"
rm -rf "$work/sample_project/.labdeck"
cd "$work/sample_project" || exit 1

step "labdeck target show local (the inventory from nvidia-smi)"
labdeck target show local

step "labdeck submit -c local gpu_train.py 20"
# A plain submit streams the log and exits with the run's status; its first line is the id.
labdeck submit -c local gpu_train.py 20 | tee "$work/submit.out"
status=${PIPESTATUS[0]}
run_id=$(head -n 1 "$work/submit.out")
labdeck runs show "$run_id"
ls -l ".labdeck/runs/$run_id/outputs"

step "docker on this machine (the GPU path of the docker target needs the NVIDIA runtime)"
if command -v docker >/dev/null && python3 -c 'import aiodocker' 2>/dev/null; then
  labdeck target show docker-gpu
else
  echo "no docker (or no aiodocker) here: the docker target's GPU path cannot be tried on this machine"
fi
exit "$status"
