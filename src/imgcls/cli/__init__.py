"""The command line: each command is one library call with the same names.

    imgcls train DATA [--model svm] [--features hog+lbp+color] [--out runs/NAME] [key=value ...]
    imgcls evaluate RUN [DATA] [--split test|all]
    imgcls predict RUN PATH... [--top-k 3] [--output preds.csv] [--precision int8] [--engine ray]
    imgcls export RUN [--format onnx] [--quantize int8]
    imgcls explain RUN [IMAGE...] [--method gradcam+lime] [--target LABEL] [--sanity]
    imgcls audit RUN [DATA] --group-by COLUMN [--metric accuracy] [--max-gap 0.05]
    imgcls search DATA [--budget 10m] [--families classical,probe,finetune] [--storage URL]
    imgcls serve RUN... [--host 127.0.0.1] [--port 8000] [--api-key KEY]
    imgcls label DATA --classes a,b,c [--out labels.csv] [--strategy mix] [--overlap 2]
    imgcls check DATA | runs [FOLDER] | datasets | models | config [key=value ...]

One module per group of commands: data (check, label, datasets), training (train, evaluate,
search), deploy (predict, export, monitor, serve), review (explain, audit), catalog (models, runs, config).
Exit codes: 0 success, 1 failure (a clear message on stderr), 2 usage error.
"""

from __future__ import annotations

import sys

import typer

from . import catalog, data, deploy, review, training
from .common import library_call

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Image classification end to end: train, evaluate, predict.")

COMMANDS = (  # (name, function, turns imgcls errors into exit code 1)
    ("train", training.train, True),
    ("evaluate", training.evaluate, True),
    ("predict", deploy.predict, True),
    ("export", deploy.export_command, True),
    ("monitor", deploy.monitor, True),
    ("check", data.check, True),
    ("label", data.label, True),
    ("search", training.search, True),
    ("datasets", data.datasets, False),
    ("models", catalog.models, False),
    ("runs", catalog.runs, True),
    ("config", catalog.config, True),
    ("serve", deploy.serve, True),
    ("explain", review.explain, True),
    ("audit", review.audit, True),
)
for _name, _command, _wrapped in COMMANDS:
    app.command(_name)(library_call(_command) if _wrapped else _command)


def main() -> None:
    app(prog_name="imgcls")


if __name__ == "__main__":
    sys.exit(main())
