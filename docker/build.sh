#!/usr/bin/env bash
# Build the HECKTOR challenge container for a trained nnunet-hecktor model.
#
# usage: docker/build.sh MODEL_DIR TASK [TAG] [packaging options]
#   MODEL_DIR  $nnUNet_results/DatasetNNN_X/<Trainer>__<Plans>__<configuration>
#   TASK       2025: 1 (segmentation), 2 (RFS risk) or 3 (HPV status); "1 2 3" is not allowed here:
#              grand-challenge runs one container per task.
#              2026: one image writes all four outputs; the staged model is also written as
#              ./model.tar.gz (upload it separately: it is mounted at /opt/ml/model)
#   TAG        image tag (default hecktor-task<TASK>, hecktor-2026)
#   options    --folds 0 1 2 3 4   --checkpoint NAME (default: the validated weights)   --postprocessing pp.json
#              --clinical-csv TRAINING.csv (2026: the most frequent T/N stage as their fallback)
#
# The build context (project source + the model reduced to the chosen folds' checkpoint) is staged
# in a temporary folder by `python -m nnunet_hecktor.challenge.packaging` and removed afterwards.
set -euo pipefail

if [ "$#" -lt 2 ]; then
    sed -n '2,17p' "$0"; exit 2
fi
MODEL_DIR="$1"; TASK="$2"; shift 2
TAG="hecktor-task${TASK}"; EDITION=2025; ARCHIVE=()
[ "$TASK" = "2026" ] && { TAG="hecktor-2026"; EDITION=2026; ARCHIVE=(--archive "$PWD/model.tar.gz"); }
if [ "$#" -gt 0 ] && [ "${1#--}" = "$1" ]; then TAG="$1"; shift; fi
case "$TASK" in 1|2|3|2026) ;; *) echo "TASK must be 1, 2, 3 or 2026" >&2; exit 2;; esac

CONTEXT="$(mktemp -d -t hecktor-build-XXXXXX)"
trap 'rm -rf "$CONTEXT"' EXIT
rmdir "$CONTEXT"
python -m nnunet_hecktor.challenge.packaging --model "$MODEL_DIR" --context "$CONTEXT" "${ARCHIVE[@]}" "$@"
docker build --platform=linux/amd64 --tag "$TAG" --build-arg HECKTOR_TASK="$TASK" \
    --build-arg HECKTOR_EDITION="$EDITION" "$CONTEXT"
echo "built $TAG (Task $TASK); test it with: docker/test_local.sh $MODEL_DIR $TASK --image $TAG"
echo "save it for upload with: docker save $TAG | gzip -c > ${TAG}.tar.gz"
