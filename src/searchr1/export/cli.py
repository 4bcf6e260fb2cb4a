"""``searchr1-export``: take a trained policy away as a standard Hugging Face model dir.

    searchr1-export outputs/<run> --out my-model                 # newest checkpoint, LoRA merged
    searchr1-export outputs/<run>/checkpoints/step_000010.pt --out my-model-10
    searchr1-export outputs/<run>/policy --out my-adapter --adapter-only   # peft's adapter format
    searchr1-export outputs/<miles run> --out qwen-hf --iteration 100 [--run]   # Miles torch_dist -> HF

The embedded trainer's checkpoints are rebuilt from the run's resolved config (base model, warm
start, LoRA rank). A Miles run dir prints (or with ``--run`` runs) Miles' own
``tools/convert_torch_dist_to_hf.py`` for one saved iteration.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional, Sequence

from searchr1.config.checks import ConfigError
from searchr1.errors import exit_on_user_error

log = logging.getLogger("searchr1.export")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="searchr1-export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", help="a run dir, a step_XXXXXX.pt checkpoint, a LoRA adapter dir or an HF model dir")
    parser.add_argument("--out", required=True, type=Path, help="the directory to write (new or empty)")
    parser.add_argument(
        "--adapter-only", action="store_true", help="write the LoRA adapter in peft's format instead of merged weights"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="base model option (conf/model) of an adapter dir outside any run; default: the shipped one",
    )
    parser.add_argument(
        "--iteration",
        type=int,
        default=None,
        help="Miles runs: the saved iteration to convert (default: the newest in model.save)",
    )
    parser.add_argument("--run", action="store_true", help="Miles runs: run the conversion (default: print it)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    with exit_on_user_error("searchr1-export"):
        export(args)


def export(args: argparse.Namespace) -> None:
    from searchr1.models.checkpoints import find_policy, run_trainer_name

    source = Path(args.source)
    if source.is_dir() and run_trainer_name(source) == "miles":
        from searchr1.trainers.miles.convert import convert_run

        convert_run(source, args.out, iteration=args.iteration, execute=args.run)
        return
    if args.iteration is not None or args.run:
        raise ConfigError(f"--iteration and --run are for Miles run dirs; {source} is not one")
    from searchr1.export.hf import export_hf

    saved = find_policy(args.source, "source")
    out = export_hf(saved, args.out, _model_config(args.model), adapter_only=args.adapter_only)
    print(
        f"wrote {out} (load it: transformers.AutoModelForCausalLM.from_pretrained({str(out)!r}))"
        if not args.adapter_only
        else f"wrote {out} (peft adapter: PeftModel.from_pretrained(<base>, {str(out)!r}))"
    )


def _model_config(option: Optional[str]):
    """The composed config's ``model`` (with ``model=<option>`` when given), checked like a run's."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from searchr1.config.compose import compose_config
    from searchr1.config.validate import one_line_error, to_typed

    try:
        return to_typed(compose_config([f"model={option}"] if option else [])).model
    except (HydraException, OmegaConfBaseException) as exc:  # an unknown option, on one line
        raise ConfigError(f"--model {option}: {one_line_error(exc)}") from None
