#!/bin/bash
# The premise before learning on small sets of the MEAD-like framing, one renderer factor at a time
# (README "The default data and the paper's premise"). Each row: render 6 identities x 3 sentences at
# 64 px with overrides of preset mead-v1 (the default when the table was made, before the speech gains were
# calibrated: width and jaw at 1), then `stccl diagnose --untrained` on all pairs.
#   bash experiments/premise_factors.sh [OUT_DIR]      (about 20 s per row on an idle core)
set -euo pipefail
OUT=${1:-data/premise_factors}
CKPT=checkpoints/metric_control.pt   # iresnet_tiny at 64 px; --untrained: its architecture at seed 0
FRAME="zoom=1.65 centre_y=0.28 speech_cheeks=1.0 speech_open_gain=1.8 rate_range=(0.6,0.7)"
CLEAN="pose_jitter=0.0 blink_rate=0.0 noise_std=0.0 jpeg_quality=95"
row() {  # row NAME PRESET OVERRIDES...
  local name=$1 preset=$2; shift 2
  python - "$OUT/$name" "$preset" "$@" <<'PY'
import ast, sys
from stccl.data import synth
out, preset, *kv = sys.argv[1:]
over = {k: ast.literal_eval(v) for k, v in (x.split("=", 1) for x in kv)}
cfg = synth.make_config(preset, size=64, n_identities=6, n_test=2, n_sentences=3, **over)
synth.synthesize(out, cfg, seed=0, force=True, progress=False)
PY
  python -m stccl diagnose --checkpoint "$CKPT" --untrained --data "$OUT/$name" --split all --batches 8 \
      --seeds 0 --no-progress | tail -1 > "$OUT/$name.json"
  python -c "import json,sys; r=json.load(open(sys.argv[1]))['per_query']['vd']['temporal']; \
print(f'{sys.argv[2]:24s} temporal VD pos {r[\"pos\"]:.3f} gap {r[\"gap\"]:.3f}')" "$OUT/$name.json" "$name"
}
mkdir -p "$OUT"
row control_premise mead-v1 $FRAME $CLEAN "alignment='truth'" emotion_timing=False emotion_on_mouth=False
row emotion_on_mouth mead-v1 $FRAME $CLEAN "alignment='truth'" emotion_timing=False
row own_timing_dtw mead-v1 $FRAME $CLEAN
row mead_v1 mead-v1
row default default
row sensor_noise mead-v1 $FRAME "alignment='truth'" emotion_timing=False emotion_on_mouth=False pose_jitter=0.0 blink_rate=0.0 noise_std=0.02 jpeg_quality=85
row old_default loose
