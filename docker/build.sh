#!/usr/bin/env bash
# Build the HECKTOR challenge container for a trained nnunet-hecktor model.
#
# usage: docker/build.sh MODEL_DIR TASK [TAG] [packaging options]
#   MODEL_DIR  $nnUNet_results/DatasetNNN_X/<Trainer>__<Plans>__<configuration>
#   TASK       1 (segmentation), 2 (RFS risk) or 3 (HPV status); "1 2 3" is not allowed here:
#              grand-challenge runs one container per task
#   TAG        image tag (default hecktor-task<TASK>)
#   options    --folds 0 1 2 3 4   --checkpoint NAME (default: the validated weights)   --postprocessing pp.json
#
# The build context (project source + the model reduced to the chosen folds' checkpoint) is staged
# in a temporary folder by `python -m nnunet_hecktor.challenge.packaging` and removed afterwards.
set -euo pipefail

if [ "$#" -lt 2 ]; then
    sed -n '2,13p' "$0"; exit 2
fi
MODEL_DIR="$1"; TASK="$2"; shift 2
TAG="hecktor-task${TASK}"
if [ "$#" -gt 0 ] && [ "${1#--}" = "$1" ]; then TAG="$1"; shift; fi
case "$TASK" in 1|2|3) ;; *) echo "TASK must be 1, 2 or 3" >&2; exit 2;; esac

CONTEXT="$(mktemp -d -t hecktor-build-XXXXXX)"
trap 'rm -rf "$CONTEXT"' EXIT
rmdir "$CONTEXT"
python -m nnunet_hecktor.challenge.packaging --model "$MODEL_DIR" --context "$CONTEXT" "$@"
docker build --platform=linux/amd64 --tag "$TAG" --build-arg HECKTOR_TASK="$TASK" "$CONTEXT"
echo "built $TAG (Task $TASK); test it with: docker/test_local.sh $MODEL_DIR $TASK --image $TAG"
echo "save it for upload with: docker save $TAG | gzip -c > ${TAG}.tar.gz"
