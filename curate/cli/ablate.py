"""``curate ablate SPEC``, ``curate finetune CKPT``, ``curate probe CKPT``, ``curate evaluate MODEL``.

Datasets on the command line are YAML mappings, e.g.
``--train "{kind: librilight, root: /data/librispeech_finetuning, amount: 10min}"`` and
``--eval "test-clean={kind: librispeech, root: /data/LibriSpeech, split: test-clean}"`` (repeatable).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from curate.cli.console import RayAddressOption, Runner, RunnerOption

TRAIN_HELP = (
    "labelled training set as a YAML mapping: {kind: librispeech|librilight|mls|commonvoice|synthetic, root: DIR, …}"
)
EVAL_HELP = "test set NAME={kind: …, root: …, split: …} (repeatable)"


def _dataset(text: str, what: str) -> dict[str, Any]:
    import yaml

    from curate.ablation.config import check_dataset
    from curate.cli.console import fail
    from curate.errors import ConfigError
    from curate.yamlconf import load_yaml

    try:
        return check_dataset(load_yaml(text), what)
    except (yaml.YAMLError, ConfigError) as e:
        fail(f"{what}: {e}")
    raise AssertionError("unreachable")


def _evals(items: list[str] | None) -> dict[str, Any]:
    """``--eval NAME={kind: …, root: …}`` (the one ``KEY=VALUE`` parser); a bad one is a CurateError line."""
    from curate.ablation.config import check_dataset
    from curate.w2v2.asr_data import read_dataset
    from curate.yamlconf import parse_set

    evals = parse_set(items, "NAME={kind: …, root: …}", option="--eval")
    return {name: read_dataset(check_dataset(spec, f"--eval {name}")) for name, spec in evals}


def _train(text: str):
    from curate.cli.console import fail
    from curate.w2v2.asr_data import AsrDataError, read_dataset

    try:
        return read_dataset(_dataset(text, "--train"))
    except AsrDataError as e:
        fail(str(e))


def register(app: typer.Typer) -> None:
    @app.command()
    def ablate(
        spec: Annotated[Path, typer.Argument(help="ablation YAML, e.g. configs/ablations/tiny-demo.yaml")],
        out: Annotated[Path, typer.Option(help="results directory (rerun the same command to resume)")],
        runner: RunnerOption = Runner.ray,
        workers: Annotated[int | None, typer.Option(help="parallel cells (default: one per GPU)")] = None,
        cell: Annotated[list[str] | None, typer.Option(help="run only this cell (repeatable)")] = None,
        ray_address: RayAddressOption = None,
        threads: Annotated[
            int | None, typer.Option(help="torch CPU threads per cell (1 is fastest for tiny CPU runs)")
        ] = None,
    ) -> None:
        """Pre-train every cell, keep its best checkpoint by validation loss, fine-tune/probe, tabulate WER."""
        from curate.ablation.config import load_ablation
        from curate.ablation.runner import run_ablation
        from curate.cli.console import console, fail, progress_bar
        from curate.cli.console import out as stdout
        from curate.errors import ConfigError

        try:
            n = len(load_ablation(spec).cells) if not cell else len(cell)
            with progress_bar() as bar:
                task = bar.add_task("cells", total=n, extra="")

                def on_cell(row: dict[str, Any]) -> None:
                    bar.update(task, advance=1, extra=f"{row['cell']}: {row['status']}")

                run_ablation(
                    spec,
                    out,
                    runner=runner.value,
                    num_workers=workers,
                    cells=cell,
                    address=ray_address,
                    threads=threads,
                    on_cell=on_cell,
                )
        except ConfigError as e:
            fail(str(e))
        stdout.print((out / "results.md").read_text())
        console.print(f"results: {out / 'results.parquet'} and {out / 'results.md'}")

    @app.command()
    def finetune(
        checkpoint: Annotated[Path, typer.Argument(help="pre-trainer checkpoint (best.pt / last.pt)")],
        train: Annotated[str, typer.Option(help=TRAIN_HELP)],
        out: Annotated[Path, typer.Option(help="output directory (finetuned.pt, eval-*.json, summary.json)")],
        config: Annotated[Path | None, typer.Option(help="fine-tuning YAML, e.g. configs/finetune/10min.yaml")] = None,
        eval_: Annotated[list[str] | None, typer.Option("--eval", help=EVAL_HELP)] = None,
        set_: Annotated[
            list[str] | None, typer.Option("--set", help="override KEY=VALUE of the fine-tuning config")
        ] = None,
    ) -> None:
        """CTC fine-tuning on letters (thesis protocol), then greedy decoding and WER/CER on the test sets."""
        from curate.ablation.config import load_finetune_config
        from curate.cli.console import fail, progress_bar
        from curate.cli.console import out as stdout
        from curate.errors import ConfigError
        from curate.w2v2.finetune import FinetuneError
        from curate.w2v2.finetune import finetune as run

        try:
            raw = _config_dict(config, set_)
            cfg = load_finetune_config(raw, str(config or "finetune"))
        except ConfigError as e:
            fail(str(e))
        utts, evals = _train(train), _evals(eval_)
        try:
            with progress_bar() as bar:
                task = bar.add_task("fine-tune", total=cfg.steps(), extra="")
                summary = run(
                    checkpoint,
                    utts,
                    cfg,
                    out,
                    evals=evals,
                    on_log=lambda r: bar.update(task, completed=r["step"], extra=f"loss {r['loss']:.3f}"),
                )
        except FinetuneError as e:
            fail(str(e))
        stdout.print(json.dumps({"wer": summary["wer"], "cer": summary["cer"]}, indent=2))

    @app.command()
    def probe(
        checkpoint: Annotated[Path, typer.Argument(help="pre-trainer checkpoint (best.pt / last.pt)")],
        train: Annotated[str, typer.Option(help=TRAIN_HELP)],
        out: Annotated[Path, typer.Option(help="output directory (probe.json, layers.png)")],
        eval_: Annotated[list[str] | None, typer.Option("--eval", help=EVAL_HELP)] = None,
        steps: Annotated[int, typer.Option(help="training steps of the probe heads")] = 2000,
        device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    ) -> None:
        """Fast probe of a frozen checkpoint: weighted layer sum + linear CTC head, and per-layer CER."""
        from curate.ablation.config import load_probe_config
        from curate.cli.console import fail, progress_bar
        from curate.cli.console import out as stdout
        from curate.errors import ConfigError
        from curate.w2v2.finetune import FinetuneError
        from curate.w2v2.probe import probe as run

        try:
            cfg = load_probe_config({"steps": steps, "device": device})
        except ConfigError as e:
            fail(str(e))
        utts, evals = _train(train), _evals(eval_)
        try:
            with progress_bar() as bar:
                task = bar.add_task("probe", total=cfg.steps, extra="")
                rep = run(
                    checkpoint,
                    utts,
                    evals or {"train": utts},
                    cfg,
                    out,
                    on_log=lambda r: bar.update(task, completed=r["step"], extra=f"loss {r['loss']:.3f}"),
                )
        except (FinetuneError, ConfigError) as e:
            fail(str(e))
        stdout.print(
            json.dumps({"wer": rep["wer"], "cer": rep["cer"], "layer_weights": rep["layer_weights"]}, indent=2)
        )
        stdout.print(f"per-layer report: {out / 'probe.json'}, plot: {out / 'layers.png'}")

    @app.command()
    def evaluate(
        model: Annotated[Path, typer.Argument(help="fine-tuned model (finetuned.pt of `curate finetune`)")],
        eval_: Annotated[list[str], typer.Option("--eval", help=EVAL_HELP)],
        out: Annotated[Path | None, typer.Option(help="write eval-<name>.json here")] = None,
        device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    ) -> None:
        """Greedy letter decoding of test sets with a fine-tuned model; prints WER and CER (%)."""
        from curate.cli.console import fail
        from curate.cli.console import out as stdout
        from curate.w2v2.finetune import FinetuneError, _device, load_finetuned
        from curate.w2v2.finetune import evaluate as run

        try:
            m = load_finetuned(model, str(_device(device)))
        except (FinetuneError, FileNotFoundError) as e:
            fail(str(e))
        for name, utts in _evals(eval_).items():
            res = run(m, utts)
            if out:
                out.mkdir(parents=True, exist_ok=True)
                (out / f"eval-{name}.json").write_text(json.dumps(res, indent=2) + "\n")
            stdout.print(f"{name}: WER {res['wer']:.2f} %  CER {res['cer']:.2f} %  ({res['utterances']} utterances)")


def _config_dict(path: Path | None, overrides: list[str] | None) -> dict[str, Any]:
    from curate.errors import ConfigError
    from curate.yamlconf import load_yaml

    raw: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"{path}: no such fine-tuning config")
        raw = load_yaml(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping")
    from curate.yamlconf import parse_set

    raw.update(parse_set(overrides))
    return raw
