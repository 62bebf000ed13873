#!/bin/bash
# Side-by-side: old rlkit (140d30a) and new rlkit (main), each alternating with SB3, 3 rounds.
. $VENV/bin/activate  # a venv with rlkit's dependencies; SB3 (torch 2.13 CPU, SB3 2.9.2) in /work/sb3venv
for r in 1 2 3; do
  for side in base main; do
    if [ $side = base ]; then d=/work/wt/base; else d=/work/main; fi
    (cd $d && PYTHONPATH=$d python benchmarks/vs_sb3.py --agent a2c --sb3-python /work/sb3venv/bin/python --skip-solve --repeats 2 --out /work/speed_${side}_a2c_$r.json > /work/speed_${side}_a2c_$r.log 2>&1)
    (cd $d && PYTHONPATH=$d python benchmarks/vs_sb3.py --agent dqn --sb3-python /work/sb3venv/bin/python --skip-solve --repeats 1 --steps 30000 --out /work/speed_${side}_dqn_$r.json > /work/speed_${side}_dqn_$r.log 2>&1)
    echo "$r $side done $(date +%T)"
  done
done
