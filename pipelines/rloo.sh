#!/bin/sh
# pipelines/rloo.sh: on-policy policy gradient with the rloo advantage
# estimator, as pipelines/grpo.sh runs grpo (see there; OUT default
# out/rloo).
. "$(dirname "$0")/lib.sh"
pp_pg_pipeline rloo rloo
