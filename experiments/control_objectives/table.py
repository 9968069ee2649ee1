"""Table of the positive-control objective experiments (issue 12): per-query gap (matched minus mismatched
similarity), mean ± SD over 3 seeds, held-out S007-S008 of `stccl synth --preset control`.

    python experiments/control_objectives/table.py      # prints the Markdown table of the README
"""

import json
from pathlib import Path

HERE = Path(__file__).parent
RUNS = [  # (file, objective, spatial negatives)
    ("untrained.json", "untrained (initial weights)", "-"),
    ("scc_tcc5_frame_500.json", "SCC + 5 TCC (the paper's)", "frame"),
    ("scc_tcc5_mismatched_300.json", "SCC + 5 TCC", "frame + mismatched"),
    ("scc_tcc035_frame_300.json", "SCC + 0.35 TCC (official code's effective weight)", "frame"),
    ("scc_tcc035_mismatched_300.json", "SCC + 0.35 TCC", "frame + mismatched"),
    ("scc_tcc5_ownheads_mismatched_300.json", "SCC + 5 TCC, own temporal heads", "frame + mismatched"),
    ("scc_tcc035_ownheads_mismatched_300.json", "SCC + 0.35 TCC, own temporal heads", "frame + mismatched"),
    ("scc_frame_300.json", "SCC alone", "frame"),
    ("scc_mismatched_300.json", "SCC alone", "frame + mismatched"),
]
KEYS = [("vd", "spatial"), ("cm", "spatial"), ("vd", "temporal"), ("cm", "temporal")]


def main() -> None:
    print("| objective | spatial negatives | steps | " + " | ".join(f"{v.upper()} {k}" for v, k in KEYS) + " |")
    print("|---|---|---|" + "---|" * len(KEYS))
    for name, objective, negatives in RUNS:
        d = json.loads((HERE / name).read_text())
        cells = []
        for v, k in KEYS:
            r = d["per_query"][v][k]
            mark = "**" if r["gap"] >= 0.3 else ""
            cells.append(f"{mark}{r['gap']:.3f} ± {r['gap_sd']:.3f}{mark}")
        print(f"| {objective} | {negatives} | {d['step']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
