#!/bin/bash
# Queues the shards as a job array and the merge after all of them succeed.
#   EXPERIMENT=examples/experiments/mm3-servers.toml OUT=whatif-runs examples/deploy/submit.sh
set -euo pipefail
here=$(dirname "$0")
array=$(sbatch --parsable --export=ALL "$here/whatif-shards.sbatch")
sbatch --dependency="afterok:${array%%;*}" --export=ALL "$here/whatif-merge.sbatch"
