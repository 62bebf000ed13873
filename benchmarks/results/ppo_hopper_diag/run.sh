#!/bin/bash
# PPO Hopper diagnostic: the Hopper-v5 preset's settings on Hopper-v4 (seeds 1001-1002), and on Hopper-v5 seeds 1004-1005.
. /work/venv/bin/activate; cd /work/runs/hopper_diag
env=$1; shift
for s in "$@"; do
  nice python -m rlkit.train --threads 1 --agent ppo --env $env --config hopper_settings.yaml --seed $s --run-dir ${env}_s$s --quiet > ${env}_s$s.log 2>&1
done
