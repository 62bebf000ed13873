#!/bin/sh
# rlkit's A2C CartPole preset for 10,000 env steps (no stop), then its final evaluation of 20
# greedy episodes on seeds the run never used; seeds FIRST..LAST (default 1-8), e.g.
#   sh rlkit_learn.sh 17 48
# EXTRA adds settings, e.g.
#   EXTRA="--set optimizer=rmsprop_torch --set optimizer_eps=1e-5" sh rlkit_learn.sh
for seed in $(seq "${1:-1}" "${2:-8}"); do
  rm -rf "/tmp/a2c10k/$seed"
  python -m rlkit.train --agent a2c --env CartPole-v1 --seed "$seed" --total-steps 10000 \
    --eval-every 0 --final-eval-episodes 20 --set stop_reward=null \
    --run-dir "/tmp/a2c10k/$seed" --quiet $EXTRA > /dev/null 2>&1
  python -c "import json; print($seed, json.load(open('/tmp/a2c10k/$seed/results.json'))['mean_reward'])"
done
