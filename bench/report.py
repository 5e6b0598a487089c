"""The benchmark's results as Markdown tables (printed, and written beside the JSON), and the
result files themselves."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from bench.project import STAGES, TRAIN_STAGE
from bench.records import ratio, without_download
from bench.runner import PREDICT_FORMATS, PREDICT_MODELS
from fraud.core.models import STRATEGIES


def fmt(value: Any, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}{unit}"
        return f"{value:.{digits}f}{unit}"
    return str(value)


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---" if i == 0 else "---:" for i in range(len(header))) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def section_goals(result: dict[str, Any]) -> str:
    rows = []
    for goal in result["goals"]:
        sign = "≤" if goal["direction"] == "max" else "≥"
        rows.append([goal["what"], f"{sign} {fmt(goal['target'], 2)}",
                     fmt(goal["measured"], 3), fmt(goal["met"])])
    return "## Goals\n\n" + table(["goal", "target", "measured", "met"], rows)


def section_stages(result: dict[str, Any]) -> str:
    repro = result["repro"]
    rows = []
    for name in result.get("stages", STAGES):
        stage = repro["stages"].get(name)
        if stage is None:
            continue
        rows.append([f"`{name}`", fmt(stage["median_wall_s"]),
                     f"{fmt(stage['min_wall_s'])}–{fmt(stage['max_wall_s'])}",
                     fmt(stage["max_rss_mb"], 0)])
    rows.append(["DVC itself (repro minus stage commands)", fmt(repro["median_dvc_overhead_s"]),
                 "", ""])
    rows.append(["**whole `dvc repro`** (peak RSS: whole process tree)",
                 f"**{fmt(repro['median_wall_s'])}**",
                 f"{fmt(repro['min_wall_s'])}–{fmt(repro['max_wall_s'])}",
                 f"**{fmt(repro['max_peak_rss_mb'], 0)}**"])
    return (f"## Stages of `dvc repro` from a clean workspace (median of {repro['repeats']})\n\n"
            "Wall time of each stage's command and its peak RSS (kernel high-water mark).\n\n"
            + table(["stage", "wall s", "min–max s", "peak RSS MB"], rows))


def section_commands(result: dict[str, Any]) -> str:
    rows = []
    repro, noop = result["repro"], result["noop"]
    rows.append(["`dvc repro` (clean workspace)", fmt(repro["median_wall_s"]),
                 repro["repeats"], fmt(repro["max_peak_rss_mb"], 0),
                 f"all {len(result.get('stages', STAGES))} stages"])
    rows.append(["`dvc repro` (no-op)", fmt(noop["median_wall_s"]), noop["repeats"],
                 fmt(noop["max_peak_rss_mb"], 0), "nothing to run"])
    for strategy, runs in result["exp_run"].items():
        if not isinstance(runs, dict):
            continue
        ran = ", ".join(f"{name} {fmt(v['median_wall_s'])} s"
                        for name, v in runs["stages"].items())
        rows.append([f"`dvc exp run -S train.strategy={strategy}`", fmt(runs["median_wall_s"]),
                     runs["repeats"], fmt(runs["max_peak_rss_mb"], 0), ran])
    return ("## DVC commands\n\n"
            + table(["command", "median s", "runs", "peak RSS MB", "what ran"], rows))


def section_epochs(result: dict[str, Any]) -> str:
    epochs = result["epochs"]
    logged = result["repro"].get("train_epochs", {})
    rows = []
    for strategy in STRATEGIES:
        row = epochs["strategies"][strategy]
        pipe, floor = row["pipeline"], row["floor"]
        tut = row.get("tutorial", {})
        in_repro = logged.get(strategy, {})
        rows.append([strategy, fmt(in_repro.get("median_steady_epoch_s"), 3),
                     fmt(in_repro.get("median_first_epoch_s")),
                     fmt(pipe["steady_epoch_s"], 3), fmt(pipe["first_epoch_s"]),
                     fmt(floor["steady_epoch_s"], 3), fmt(tut.get("steady_epoch_s"), 3),
                     fmt(ratio(tut.get("steady_epoch_s"), pipe["steady_epoch_s"]), 1, "×"),
                     fmt(ratio(pipe["steady_epoch_s"], floor["steady_epoch_s"]), 1, "×")])
    return (f"## Seconds per epoch (including validation)\n\n"
            "*in `dvc repro`*: what each train stage logged during the clean runs above "
            "(every epoch after the first, median over the repeats). The other columns: "
            f"median of epochs 2–{epochs['epochs']} in one process, the three code paths "
            f"interleaved per strategy ({epochs['train_rows']:,} training rows, "
            f"{epochs['val_rows']:,} validation rows, batch {epochs['batch_size']}; the "
            f"tutorial's oversampler: epochs 2–{epochs['tutorial_epochs']}). *pipeline*: "
            "the train stage's code; *floor*: one `tf.function` per epoch, data on the device, "
            "loss only; *tutorial*: the tutorial's `fit` calls. The first epoch traces the "
            "functions.\n\n"
            + table(["strategy", "in `dvc repro` s/epoch", "1st epoch s", "pipeline s/epoch",
                     "1st epoch s", "floor s/epoch", "tutorial s/epoch", "tutorial / pipeline",
                     "pipeline / floor"], rows))


def section_scoring(result: dict[str, Any]) -> str:
    scoring = result["scoring"]
    rows = []
    for strategy, v in scoring["strategies"].items():
        onnx = v.get("onnx", {})
        rows.append([strategy, fmt(v["rows_per_s"], 0), fmt(v["first_call_s"], 3),
                     fmt(v["load_s"], 3), fmt(onnx.get("rows_per_s"), 0),
                     fmt(onnx.get("load_s"), 3),
                     f"{onnx['max_abs_diff_vs_keras']:.1e}" if onnx else "–"])
    return (f"## Scoring throughput\n\nKeras `predict_proba` (the scorer of the evaluate "
            f"stage with TensorFlow) and the ONNX twin `models/<strategy>.onnx` with "
            f"onnxruntime (src/fraud/serving/onnx_scoring.py, 1 thread) on all {scoring['rows']:,} "
            f"rows: median of the calls after the first (Keras: batch "
            f"{scoring['batch_size']}; its first call traces the predict function).\n\n"
            + table(["model", "Keras rows/s", "Keras first call s", "Keras load s",
                     "ONNX rows/s", "ONNX load s", "max abs. diff. ONNX vs Keras"], rows))


def section_predict(result: dict[str, Any]) -> str:
    predict = result.get("predict")
    if not predict:
        return "## `python -m src.predict`\n\nnot measured"
    rows = []
    for name in PREDICT_FORMATS:
        v = predict[name]
        rows.append([f"`{PREDICT_MODELS[name]}`", fmt(predict["rows"]),
                     fmt(v["median_wall_s"]), fmt(v["max_rss_mb"], 0), len(v["runs"])])
    scale = predict.get("scale")
    if scale:
        rows.append([f"`{PREDICT_MODELS['onnx']}`, {scale['factor']}× rows (synthetic)",
                     fmt(scale["rows"]), fmt(scale["wall_s"]), fmt(scale["max_rss_mb"], 0),
                     f"1 (RSS {fmt(scale['rss_ratio'], 2, '×')} of 1×)"])
    return ("## `python -m src.predict`: the exported model scoring the raw CSV\n\n"
            f"`{predict['command']}`: the whole command (imports, model loading, reading and "
            "checking the CSV in chunks, scoring, writing), wall time and the kernel's peak RSS "
            "(median / max over the runs). `.onnx` runs on onnxruntime without TensorFlow; "
            "`.keras` imports TensorFlow.\n\n"
            + table(["model", "rows", "wall s", "peak RSS MB", "runs"], rows))


def section_quality(result: dict[str, Any]) -> str:
    quality = result["quality"]
    stages = result["repro"]["stages"]
    rows = []
    for strategy in STRATEGIES:
        q = quality[strategy]
        stage = stages.get(TRAIN_STAGE[strategy], {}).get("median_wall_s")
        rows.append([f"Keras {strategy}", fmt(q["auc"], 4), fmt(q["prc"], 4),
                     fmt(q["precision"], 3), fmt(q["recall"], 3), fmt(q["tp"]), fmt(q["fp"]),
                     fmt(q["fn"]), fmt(q["epochs_run"]), f"{fmt(stage)} (train stage)"])
    peer = quality.get("peer", {})
    if peer.get("available"):
        m = peer["metrics"]
        rows.append(["scikit-learn LogisticRegression(class_weight='balanced')",
                     fmt(m["auc"], 4), fmt(m["prc"], 4), fmt(m["precision"], 3),
                     fmt(m["recall"], 3), fmt(int(m["tp"])), fmt(int(m["fp"])),
                     fmt(int(m["fn"])), "–", f"{fmt(peer['fit_s'])} (fit)"])
    else:
        rows.append(["scikit-learn peer", "not available: " + peer.get("error", "?"), *[""] * 8])
    return ("## Quality on the test split (threshold from `evaluate.threshold`; peer at 0.5)\n\n"
            "Exact ROC-AUC and PR-AUC (average precision), from the clean `dvc repro` above "
            "(params.yaml as it is, early stopping; the smoke run's tiny params with "
            "--smoke).\n\n"
            + table(["model", "ROC-AUC", "PR-AUC", "precision", "recall", "tp", "fp", "fn",
                     "epochs run", "time s"], rows))


def section_tutorial(result: dict[str, Any]) -> str:
    if "tutorial" not in result:
        return "## Tutorial code path\n\nskipped (--skip-tutorial)"
    tut = result["tutorial"]
    cmp_ = tut["comparison"]
    fixed = result["pipeline_fixed"]
    runs = cmp_.get("pipeline_runs_s", [cmp_["pipeline_wall_s"]])
    what = ("mean of the runs before and after the tutorial: "
            + ", ".join(fmt(r, 1) for r in runs) + " s") if len(runs) > 1 else "one run"
    rows = [[f"**end to end** (one process vs clean `dvc repro`, {what})",
             fmt(cmp_["tutorial_wall_s"]),
             fmt(cmp_["pipeline_wall_s"]), f"**{fmt(cmp_['speedup_end_to_end'], 2, '×')}**"]]
    if cmp_.get("extra_stages"):
        rows.append([(f"end to end without {', '.join(cmp_['extra_stages'])} (no counterpart "
                     "in the notebook)"), fmt(cmp_["tutorial_wall_s"]),
                     fmt(cmp_["pipeline_wall_without_extra_s"]),
                     fmt(cmp_["speedup_end_to_end_without_extra"], 2, "×")])
    for strategy in STRATEGIES:
        s = cmp_["per_strategy"][strategy]
        rows.append([(f"{strategy}: {cmp_['epochs']} epochs (tutorial `fit` vs the whole train "
                     "stage, TF import included)"), fmt(s["tutorial_fit_s"]),
                     fmt(s["pipeline_stage_s"]), fmt(s["speedup_stage_vs_fit"], 1, "×")])
        rows.append([(f"{strategy}: {cmp_['epochs']} epochs, fit only (pipeline: its first "
                     "epoch + steady s/epoch × the rest, in process)"), fmt(s["tutorial_fit_s"]),
                     fmt(s["pipeline_fit_estimate_s"]), fmt(s["speedup_fit"], 1, "×")])
        rows.append([f"{strategy}: s/epoch (same process, interleaved)",
                     fmt(s["tutorial_s_per_epoch"], 3), fmt(s["pipeline_s_per_epoch"], 3),
                     fmt(s["speedup_per_epoch"], 1, "×")])
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in
                       sorted(tut["phases"].items(), key=lambda kv: -kv[1]))
    return (f"## Tutorial code path vs the pipeline ({cmp_['epochs']} epochs per strategy, "
            f"{tut['compare_epochs']}+{tut['compare_epochs']} bias-comparison epochs, "
            "early stopping never fires)\n\n"
            + table(["", "tutorial s", "pipeline s", "tutorial / pipeline"], rows)
            + f"\n\nTutorial phases: {phases}. Pipeline peak RSS "
            f"{fmt(fixed['peak_tree_rss_mb'], 0)} MB, tutorial "
            f"{fmt(tut['peak_tree_rss_mb'], 0)} MB.")


def section_scale(result: dict[str, Any]) -> str:
    if "scale" not in result:
        return "## Scale\n\nskipped (--skip-scale)"
    sc = result["scale"]
    one, many = sc["run_1x"], sc["run_big"]
    rows = [["rows", fmt(sc["rows_1x"]), fmt(sc["rows_big"]), fmt(float(sc["factor"]), 1, "×")],
            ["whole `dvc repro` s", fmt(one["wall_s"]), fmt(many["wall_s"]),
             fmt(sc["time_ratio"], 2, "×")],
            ["… without the download stage (generating the data)",
             fmt(without_download(one)), fmt(without_download(many)),
             fmt(sc["time_ratio_without_download"], 2, "×")],
            ["peak RSS MB (process tree)", fmt(one["peak_tree_rss_mb"], 0),
             fmt(many["peak_tree_rss_mb"], 0), fmt(sc["peak_rss_ratio"], 2, "×")]]
    for name in result.get("stages", STAGES):
        a, b = one["stages"].get(name), many["stages"].get(name)
        if a and b:
            rows.append([f"`{name}` s (peak MB)",
                         f"{fmt(a['wall_s'])} ({fmt(a['max_rss_mb'], 0)})",
                         f"{fmt(b['wall_s'])} ({fmt(b['max_rss_mb'], 0)})",
                         fmt(ratio(b["wall_s"], a["wall_s"]), 2, "×")])
    return (f"## Scale: {sc['factor']}× the rows (synthetic source, {sc['epochs']} epochs per "
            "strategy, early stopping off)\n\n"
            + table(["", "1×", f"{sc['factor']}×", "ratio"], rows))


def header(result: dict[str, Any]) -> str:
    m = result["machine"]
    s = result["settings"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    modified = " (pipeline files modified since that commit)" \
        if result["project"].get("pipeline_files_modified") else ""
    return (f"# Pipeline benchmark ({result['mode']}), {result['created']}\n\n"
            f"- **Data: {result['data']['description']}**\n"
            f"- Machine: {m['cpus']} CPUs, {m['memory_gb']} GB, {m['platform']}, Python "
            f"{m['python']}; {versions}\n"
            f"{_yardstick(m)}"
            f"- Load average (1/5/15 min) at start {m['load_start']}, at end "
            f"{m.get('load_end')}: the machine is shared, timings are noisy\n"
            f"- Project at {result['project']['git_head']}{modified}; repeats {s['repeats']}; "
            f"benchmark wall time {result.get('bench_wall_s', 0) / 60:.1f} min\n")


def _yardstick(m: dict[str, Any]) -> str:
    tf = m.get("tf_import")
    if not tf:
        return ""
    return (f"- Yardstick: `python -c \"import tensorflow\"` {tf['wall_s']:.2f} s wall, "
            f"{tf['cpu_s']:.2f} s CPU (median of {tf['runs']}; load {tf['load']})\n")


def markdown(result: dict[str, Any]) -> str:
    parts = [header(result), section_goals(result), section_stages(result),
             section_commands(result), section_predict(result), section_epochs(result),
             section_scoring(result),
             section_quality(result), section_tutorial(result), section_scale(result)]
    return "\n\n".join(parts) + "\n"


def write_results(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """bench-<mode>-<time>.json / .md in `out_dir`, each copied to latest.json / latest.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    paths = {}
    for suffix, text in (("json", json.dumps(result, indent=2) + "\n"),
                         ("md", markdown(result))):
        path = out_dir / f"bench-{result['mode']}-{stamp}.{suffix}"
        path.write_text(text, encoding="utf-8")
        shutil.copyfile(path, out_dir / f"latest.{suffix}")
        paths[suffix] = path
    return paths
