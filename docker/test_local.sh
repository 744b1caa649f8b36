#!/usr/bin/env bash
# Run the challenge container's entry point on a fake /input tree and check the outputs.
#
# usage: docker/test_local.sh MODEL_DIR [TASK ...] [--image TAG] [--keep DIR]
#   MODEL_DIR  trained (or staged) model folder, used when running without docker
#   TASK       1, 2 and/or 3 (default: 1 2 3), each run separately as on grand-challenge;
#              2026: one run writing the four 2026 outputs, with the organisers' sample ehr.json
#              (trailing comma, unseen centre) and the model mounted read-only at /opt/ml/model
#   --image    run this built image with docker (read-only /input, --network none, a volume on /tmp,
#              GPUs when available), as the organisers' do_test_run.sh does
#   --keep     keep the fake input and the outputs in DIR (default: a temporary folder, removed)
#
# Without --image (or when docker is not available) the entry point `python -m nnunet_hecktor.challenge`
# runs directly in this Python environment, with HECKTOR_INPUT/HECKTOR_OUTPUT pointing at the fake
# tree and HOME pointing at an empty folder that must still be empty afterwards.
set -euo pipefail

if [ "$#" -lt 1 ]; then sed -n '2,16p' "$0"; exit 2; fi
MODEL_DIR="$1"; shift
TASKS=(); IMAGE=""; KEEP=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        --image) IMAGE="$2"; shift 2;;
        --keep) KEEP="$2"; shift 2;;
        1|2|3|2026) TASKS+=("$1"); shift;;
        *) echo "unknown argument $1" >&2; exit 2;;
    esac
done
[ "${#TASKS[@]}" -eq 0 ] && TASKS=(1 2 3)

if [ -n "$KEEP" ]; then WORK="$KEEP"; mkdir -p "$WORK"; else WORK="$(mktemp -d -t hecktor-local-XXXXXX)"; trap 'rm -rf "$WORK"' EXIT; fi
INPUT="$WORK/input"
rm -rf "$INPUT"
python -c "from nnunet_hecktor.synthetic.challenge_input import make_fake_challenge_input as m; f = m('$INPUT'); print('fake input:', f.ct.name, f.pet.name, 'ehr.json keys:', sorted(f.ehr_content), 'absent:', list(f.omitted_keys))"
INPUT_2026="$WORK/input-2026"
rm -rf "$INPUT_2026"; cp -r "$INPUT" "$INPUT_2026"
python -c "from nnunet_hecktor.synthetic.challenge_input import SAMPLE_EHR_2026_TEXT as t; open('$INPUT_2026/ehr.json', 'w').write(t)"

USE_DOCKER=0
if [ -n "$IMAGE" ]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then USE_DOCKER=1
    else echo "docker is not available: running the entry point without docker"; fi
fi

status=0
for TASK in "${TASKS[@]}"; do
    OUTPUT="$WORK/output-task$TASK"
    rm -rf "$OUTPUT"; mkdir -m o+rwx -p "$OUTPUT"
    echo "=+= Task $TASK"
    if [ "$TASK" = "2026" ]; then
        if [ "$USE_DOCKER" = 1 ]; then
            GPU=(); docker info 2>/dev/null | grep -qi nvidia && GPU=(--gpus all)
            docker run --rm --platform=linux/amd64 --network none "${GPU[@]}" \
                --volume "$INPUT_2026":/input:ro --volume "$OUTPUT":/output --volume "$MODEL_DIR":/opt/ml/model:ro \
                --tmpfs /tmp "$IMAGE" --strict || status=1
        else
            FAKE_HOME="$WORK/home-2026"; rm -rf "$FAKE_HOME"; mkdir -p "$FAKE_HOME"
            HOME="$FAKE_HOME" HECKTOR_EDITION=2026 HECKTOR_MODEL_MOUNT="$MODEL_DIR" HECKTOR_INPUT="$INPUT_2026" \
                HECKTOR_OUTPUT="$OUTPUT" HECKTOR_DEVICE="${HECKTOR_DEVICE:-auto}" \
                MPLCONFIGDIR="$WORK/tmp/matplotlib" XDG_CACHE_HOME="$WORK/tmp/cache" \
                python -m nnunet_hecktor.challenge --strict || status=1
        fi
        python - "$OUTPUT" "$INPUT_2026" <<'PY' || status=1
import sys
from pathlib import Path
import SimpleITK as sitk
from nnunet_hecktor.challenge.io import CT_FOLDER, find_single_image
from nnunet_hecktor.challenge.outputs import check_outputs_2026
output, input_dir = Path(sys.argv[1]), Path(sys.argv[2])
problems = check_outputs_2026(output, sitk.ReadImage(str(find_single_image(input_dir, CT_FOLDER, "CT"))))
for p in problems:
    print("FAIL:", p)
if not problems:
    print("OK: 2026 wrote", sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file()))
sys.exit(1 if problems else 0)
PY
        continue
    fi
    if [ "$USE_DOCKER" = 1 ]; then
        GPU=(); docker info 2>/dev/null | grep -qi nvidia && GPU=(--gpus all)
        VOLUME="hecktor-test-tmp-$$"
        docker volume create "$VOLUME" >/dev/null
        docker run --rm --platform=linux/amd64 --network none "${GPU[@]}" \
            --volume "$INPUT":/input:ro --volume "$OUTPUT":/output --volume "$VOLUME":/tmp \
            --env HECKTOR_TASK="$TASK" "$IMAGE" --strict || status=1
        docker volume rm "$VOLUME" >/dev/null
    else
        FAKE_HOME="$WORK/home-task$TASK"; rm -rf "$FAKE_HOME"; mkdir -p "$FAKE_HOME"
        HOME="$FAKE_HOME" HECKTOR_TASK="$TASK" HECKTOR_MODEL="$MODEL_DIR" HECKTOR_INPUT="$INPUT" \
            HECKTOR_OUTPUT="$OUTPUT" HECKTOR_DEVICE="${HECKTOR_DEVICE:-auto}" \
            MPLCONFIGDIR="$WORK/tmp/matplotlib" XDG_CACHE_HOME="$WORK/tmp/cache" \
            python -m nnunet_hecktor.challenge --strict || status=1
        if [ -n "$(ls -A "$FAKE_HOME")" ]; then echo "FAIL: the run wrote into HOME: $(ls -A "$FAKE_HOME")"; status=1; fi
    fi
    python - "$OUTPUT" "$TASK" "$INPUT" <<'PY' || status=1
import sys
from pathlib import Path
import SimpleITK as sitk
from nnunet_hecktor.challenge.io import check_outputs, find_single_image, CT_FOLDER
output, task, input_dir = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
ct = sitk.ReadImage(str(find_single_image(input_dir, CT_FOLDER, "CT")))
problems = check_outputs(output, [task], ct)
for p in problems:
    print("FAIL:", p)
if not problems:
    files = [str(p.relative_to(output)) for p in output.rglob("*") if p.is_file()]
    print(f"OK: Task {task} wrote exactly {files}")
sys.exit(1 if problems else 0)
PY
done
exit $status
