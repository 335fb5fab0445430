"""The ``fastctr`` command: train, predict and evaluate CTR models on click logs.

Progress and logs go to stderr; predictions and reports go to stdout. Errors are one line
on stderr, ``fastctr COMMAND: what is wrong (and the fix)``, with the exit status of
:data:`EXIT_CODES`.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import itertools
import json
import logging
import math
import numbers
import os
import re
import signal
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator, Sequence

import numpy as np

from fastctr._validation import Booleans, Interval, Options, describe, is_valid
from fastctr._version import __version__
from fastctr.bench import DEFAULT_SERVER, SERVERS
from fastctr.exceptions import ModelFileError, ParseError
from fastctr.io.ahead import read_ahead
from fastctr.io.csv import header_columns
from fastctr.io.detect import FORMATS, detect_format, hasher_for, read_data
from fastctr.io.hashing import HASHING_CONSTRAINTS
from fastctr.io.sources import first_line, read_head
from fastctr.models.base import COUNT
from fastctr.models.fm import FFMClassifier, FMClassifier
from fastctr.models.ftrl import FTRLClassifier
from fastctr.online import metrics
from fastctr.online.holdout import HoldOut
from fastctr.online.training import TRAIN_CONSTRAINTS, Progress, train, warm_up
from fastctr.serving.files import destination, load, probe_writable

log = logging.getLogger("fastctr")

#: model name on the command line -> estimator class
MODELS = {"ftrl": FTRLClassifier, "fm": FMClassifier, "ffm": FFMClassifier}
SYNTHETIC_ROWS = 1_000_000
AT_LEAST_1 = [Interval(numbers.Integral, 1, None, closed="left")]
HOLDOUT_FRACTION = [Interval(numbers.Real, 0, 1, closed="neither")]
SECONDS = [Interval(numbers.Real, 0, None, closed="neither")]
#: where ``fastctr train`` writes the model without ``-o``
DEFAULT_OUTPUT = "model.fctr"

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
#: the exit statuses of every command (also in ``fastctr --help`` and the README's "Errors")
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILURE: "runtime failure: the model could not be written (disk full,\n"
                  "permissions), or a bug (with a traceback)",
    EXIT_USAGE: "usage or data error: a bad option, a missing or unreadable file, a bad\n"
                "line, a schema that does not match the model; nothing written",
    EXIT_PARTIAL: "damaged data (truncated gzip): the rows before the damage were\n"
                  "learned and that model was written",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); the model path is left as it was",
}
#: CSV label columns tried, in order, when --label is not given
LABEL_GUESSES = ("click", "label", "clicked", "y", "target")


class CLIError(Exception):
    """A message for the user (one line, in command-line words) and the exit status."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


def _checked(parse, constraints: list):
    """An argparse ``type`` that parses a value and checks it against the constraints the
    library itself checks it with: a bad value is a one-line usage error naming the option
    (exit status 2), e.g. "argument --bits: must be an int in the range [18, 30]. Got 40
    instead."."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            value = text
        if not is_valid(value, constraints):
            raise argparse.ArgumentTypeError(
                f"must be {describe(constraints)}. Got {value!r} instead.")
        return value

    convert.__name__ = parse.__name__  # argparse names the type in some messages
    return convert


INT = {"bits": _checked(int, HASHING_CONSTRAINTS["bits"]), "count": _checked(int, AT_LEAST_1),
       "epochs": _checked(int, COUNT), "threads": _checked(int, TRAIN_CONSTRAINTS["threads"]),
       "report_every": _checked(int, TRAIN_CONSTRAINTS["report_every"])}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown (except None: "the model's default"), the epilog's lines kept."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


#: model parameters that come from the data or other options, not from their own option;
#: the CLI reads lines, never dict rows, and its models keep unknown="strict" (the default)
_NOT_OPTIONS = ("n_jobs", "fields", "numeric", "crosses", "unknown")
#: help of the parameters whose docstring text is shared or written for Python callers
_OWN_HELP = {"bits": "hash table size 2**bits (18 to 30)", "hash_seed": "seed of the feature hash",
             "numeric_transform": "how numeric values become features: bucketed (bin), "
                                  "log1p of the value, or the value itself",
             "epochs": "passes over the data",
             "value_scale": "the size of the feature values alpha, beta, l1 and l2 are carried "
                            "to: 'auto' measures it on the first rows (1 for one-hot data, "
                            "~0.1 for TF-IDF text), 1 turns it off"}


def _model_options() -> dict[str, dict]:
    """One command-line option per model parameter (``--l2-v`` for ``l2_v``): its argparse
    keywords, type-checked with the estimators' own constraints, its help taken from the
    estimators' docstrings with each model's default."""
    options: dict[str, dict] = {}
    for model_name, cls in MODELS.items():
        docs = _param_docs(cls.__doc__ or "")
        defaults = cls().get_params()
        for name, constraints in cls._parameter_constraints.items():
            if name in _NOT_OPTIONS:
                continue
            entry = options.setdefault(name, {"help": _OWN_HELP.get(name) or docs.get(name, name),
                                              "defaults": {},
                                              "constraints": constraints})
            entry["defaults"][model_name] = defaults[name]
    for entry in options.values():
        defaults = entry.pop("defaults")
        values = set(map(repr, defaults.values()))
        where = (f"default {next(iter(defaults.values()))!r}" if len(values) == 1
                 and len(defaults) == len(MODELS) else "default " + ", ".join(
                     f"{model} {value!r}" for model, value in defaults.items()))
        constraints = entry.pop("constraints")
        entry["help"] = f"{entry['help']} ({where})".replace("%", "%%")
        words = any(isinstance(c, Options) for c in constraints)
        if any(isinstance(c, Booleans) for c in constraints):
            entry["action"] = argparse.BooleanOptionalAction
        elif words and any(isinstance(c, Interval) for c in constraints):  # "auto" or a number
            entry["type"] = _checked(float, constraints)
            entry["metavar"] = "auto|X"
        elif words:
            entry["choices"] = sorted(next(c for c in constraints if isinstance(c, Options)).options)
        else:
            integral = any(isinstance(c, Interval) and c.type is numbers.Integral for c in constraints)
            entry["type"] = _checked(int if integral else float, constraints)
            entry["metavar"] = "N" if integral else "X"
    return options


def _param_docs(doc: str) -> dict[str, str]:
    """The first sentence of each parameter's description in a numpydoc "Parameters" section
    (``alpha, beta : float`` gives both names the same text)."""
    docs, names, section = {}, [], doc.partition("Parameters\n")[2].split("\n\n    ")[0]
    for line in section.splitlines()[1:]:
        text = line.strip()
        if not text:
            continue
        if line.startswith("    ") and not line.startswith("        "):  # "name, name : type"
            names = [n.strip() for n in text.partition(" : ")[0].split(",")]
        elif names:
            for name in names:
                docs.setdefault(name, re.sub(r":\w+:`([^`]*)`|``([^`]*)``",
                                             lambda m: m.group(1) or m.group(2),
                                             text.split(". ")[0].rstrip(".")))
            names = []
    return docs


def _parser() -> argparse.ArgumentParser:
    epilog = "exit status:\n" + "\n".join(f"  {code:<4} " + what.replace("\n", "\n       ")
                                          for code, what in EXIT_CODES.items())
    parser = argparse.ArgumentParser(prog="fastctr", description=__doc__.splitlines()[0],
                                     epilog=epilog, formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"fastctr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, epilog=epilog,
                              formatter_class=_HelpFormatter)

    tr = command("train", "train a model on click logs (or the synthetic stream)")
    tr.add_argument("data", nargs="*", help="log files ('-' for stdin; gzip detected). "
                    "None: the embedded synthetic Criteo-schema stream")
    tr.add_argument("-o", "--output", help="where to write the model file (checked before "
                    f"training; default: {DEFAULT_OUTPUT} in the current directory)")
    tr.add_argument("--model", choices=sorted(MODELS),
                    help="the model (default ftrl; with --init, the saved model's)")
    tr.add_argument("--init", metavar="MODEL",
                    help="continue training this saved model (its class, parameters and "
                         "reader settings; given parameter options change it)")
    tr.add_argument("--holdout", metavar="FILE", action="append", default=[],
                    help="after training, evaluate on FILE (read as the training data) and "
                         "report it under \"holdout\" (repeatable)")
    tr.add_argument("--holdout-fraction", metavar="F", type=_checked(float, HOLDOUT_FRACTION),
                    help="hold out about this fraction of the training rows (0 < F < 1), chosen "
                         "by a hash of each row's features (the same rows every run, whatever "
                         "their order; duplicates on one side): not learned, scored by the "
                         "final model and reported under \"held_out\" (kept in memory; "
                         "--epochs 1 only)")
    tr.add_argument("--rows", type=INT["count"], default=SYNTHETIC_ROWS,
                    help="rows of the synthetic stream")
    tr.add_argument("--seed", type=int, default=0, help="seed of the synthetic stream")
    tr.add_argument("--report-every", type=INT["report_every"], default=100_000,
                    help="rows between report lines")
    tr.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="any model parameter, e.g. --param crosses='[[\"C1\",\"C2\"]]' "
                         "(repeatable)")
    params = tr.add_argument_group("model parameters (the model's default where not given)")
    for name, keywords in _model_options().items():
        params.add_argument(f"--{name.replace('_', '-')}", dest=name, **keywords)
    tr.add_argument("--threads", type=INT["threads"], default=1,
                    help="N >= 2: parse in N threads at once; FM and FFM also learn in N "
                         "lock-free (Hogwild) threads, which makes them non-deterministic. "
                         "FTRL learns in order in one thread, with the same result as 1")
    tr.add_argument("--tune", action="store_true",
                    help="choose alpha, l1, l2 (FM/FFM: and eta) by progressive validation on "
                         "the first --tune-rows rows, then train from the first row with them. "
                         "Without it, the values (given or default) are carried to the size of "
                         "the feature values, see --value-scale (unchanged for one-hot data)")
    tr.add_argument("--tune-rows", type=INT["count"], default=100_000,
                    help="rows --tune chooses on")
    _data_options(tr, default_format="auto")

    pr = command("predict", "write one click probability per row (to stdout or -o FILE)")
    pr.add_argument("model")
    pr.add_argument("data", nargs="+")
    pr.add_argument("-o", "--output", metavar="FILE", help="write the predictions to FILE")
    pr.add_argument("--id-column", metavar="NAME",
                    help="print this column's value before each probability; 'line' for the "
                         "row's line number in its file")
    pr.add_argument("--with-label", action="store_true",
                    help="print the row's label after each probability")
    _data_options(pr)

    ev = command("eval", "AUC, log loss, normalized entropy, calibration")
    ev.add_argument("model")
    ev.add_argument("data", nargs="+")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    _data_options(ev)

    be = command("bench", "compare fastctr with VW, River, scikit-learn, LightGBM (--peers), "
                          "or load-test fastctr serve against a FastAPI + River service (--serve)")
    what = be.add_mutually_exclusive_group(required=True)
    what.add_argument("--peers", action="store_true",
                      help="run the peer comparison (same rows, same order, one CPU each)")
    what.add_argument("--serve", action="store_true",
                      help="load-test fastctr serve and the hand-written baseline service over "
                           "loopback with wrk (or ab): requests/s, p50, p99, errors")
    be.add_argument("--duration", type=_checked(float, SECONDS), default=5.0, metavar="SECONDS",
                    help="--serve: seconds of load per point")
    be.add_argument("--concurrency", type=INT["count"], nargs="+", default=[1, 10, 100],
                    help="--serve: concurrent connections of the load points")
    be.add_argument("--feedback-rate", type=float, default=0.005,
                    help="--serve: share of predictions whose click is sent back (0: none)")
    be.add_argument("--generator", choices=("wrk", "ab"),
                    help="--serve: the load generator (default: wrk if installed, else ab)")
    be.add_argument("--server", choices=SERVERS, default=DEFAULT_SERVER,
                    help="--serve: the HTTP server of fastctr serve and the floor (the baseline "
                         "runs under uvicorn)")
    be.add_argument("--data", choices=("synthetic", "real"), default="synthetic",
                    help="make_criteo rows, or the real Criteo sample ($FASTCTR_DATA)")
    be.add_argument("--rows", type=INT["count"], default=SYNTHETIC_ROWS,
                    help="synthetic training rows")
    be.add_argument("--test-rows", type=INT["count"], default=200_000,
                    help="synthetic test rows (later rows)")
    be.add_argument("--out", default="bench-results", help="folder for the JSON, markdown, PNG")
    be.add_argument("--only", action="append", metavar="PEER", help="run only these peers")
    be.add_argument("--bits", type=INT["bits"], default=22, help="hash buckets 2**bits for every peer")
    be.add_argument("--river-rows", type=int, default=50_000, help="River FTRL training subset")
    be.add_argument("--river-fm-rows", type=int, default=10_000, help="River FM training subset")
    be.add_argument("--latency-calls", type=int, default=2_000, help="predict_one calls timed")
    be.add_argument("--lgbm-rounds", type=int, default=100, help="LightGBM boosting rounds")

    se = command("serve", "serve a model over HTTP: predict, click feedback, entity features "
                          "(needs pip install \"fastctr[serve]\"; API docs at /docs)")
    se.add_argument("model", help="the model or Scorer file; reloaded when the file changes")
    se.add_argument("--host", default="127.0.0.1", help="address to listen on")
    se.add_argument("--port", type=int, default=8000, help="port to listen on")
    se.add_argument("--workers", type=INT["count"], default=1, help="worker processes")
    se.add_argument("--server", choices=SERVERS, default=DEFAULT_SERVER,
                    help="the HTTP server: granian (HTTP handled in Rust, the app called "
                         "over RSGI: more requests/s and a short tail under many connections) "
                         "or uvicorn (ASGI: a little faster under a few); see the README")
    se.add_argument("--redis", metavar="URL", help="Redis for impressions and entity features "
                    "(redis://host:port/db); default: in-process stores")
    se.add_argument("--redis-timeout", type=_checked(float, SECONDS), default=0.05,
                    metavar="SECONDS", help="most time one Redis call may take; 3 slower or "
                    "failed calls in a row open the circuit breaker (served without Redis)")
    se.add_argument("--learn", action="store_true",
                    help="learn from POST /feedback (a model file, not a Scorer)")
    se.add_argument("--snapshot-every", type=_checked(float, SECONDS), metavar="SECONDS",
                    help="with --learn, write the model to MODEL every SECONDS (atomically)")
    se.add_argument("--max-batch", type=INT["count"], default=1000,
                    help="most rows in one /predict or /feedback request")
    se.add_argument("--max-body", type=INT["count"], metavar="BYTES",
                    help="largest request body read (413 beyond, refused before it is read "
                         "when its length is declared); default 8 MiB")
    se.add_argument("--impression-ttl", type=_checked(float, SECONDS), default=3600.0,
                    metavar="SECONDS", help="how long a prediction waits for its feedback")
    se.add_argument("--ab", metavar="MODEL:SHARE", action="append", default=[],
                    help="A/B test: serve MODEL to this share of units (users, else requests), "
                         "e.g. challenger.fctr:0.1 (repeatable); GET /ab reports the arms")
    fb = se.add_mutually_exclusive_group()
    fb.add_argument("--fallback", metavar="MODEL", help="a model file that serves when MODEL "
                    "fails to load or raises (/health says degraded)")
    fb.add_argument("--fallback-ctr", metavar="CTR", type=float,
                    help="a constant click probability that serves when MODEL fails to load "
                         "or raises, e.g. 0.01")
    se.add_argument("--quality-window", type=INT["count"], default=100_000, metavar="N",
                    help="labelled impressions the live model quality (/stats, /metrics) is "
                         "computed over")
    se.add_argument("--access-log", action="store_true", help="log every request")
    return parser


def _data_options(p: argparse.ArgumentParser, default_format: str | None = None) -> None:
    remembered = "" if default_format else "; default: the model's, else auto"
    p.add_argument("--format", choices=("auto",) + FORMATS, default=default_format,
                   help="log format ('auto': told from the first line of the first file)"
                        + remembered)
    p.add_argument("--batch-size", type=INT["count"], default=100_000, help="rows per batch")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="bad lines: stop with the file, line and field, or skip and count them")
    p.add_argument("--label", help="csv: the label column (default: the first of "
                   f"{', '.join(LABEL_GUESSES)} in the header; a model remembers it)")
    p.add_argument("--ignore", action="append", default=[], metavar="COLUMN",
                   help="csv: a column to leave out (repeatable)")
    p.add_argument("--numeric", action="append", default=[], metavar="COLUMN",
                   help="csv: a numeric column (repeatable); the others are categorical")
    p.add_argument("--sep", help="csv: the separator, e.g. ',' or 'tab' (default ',')")
    p.add_argument("--hash-indices", action="store_true",
                   help="libsvm/libffm: hash indices instead of using them as buckets")


def _sep(text: str | None) -> str | None:
    return "\t" if text == "tab" else text


# -- inputs, outputs and the reader settings a model remembers ------------------------------
def _check_inputs(paths: Sequence[str]) -> None:
    """Every DATA path exists and is a file (or '-'), before any work."""
    for path in paths:
        if path == "-":
            continue
        if os.path.isdir(path):
            raise CLIError(f"DATA {path!r} is a directory: pass the log files in it, e.g. "
                           f"{os.path.join(path, '*.tsv.gz')}")
        if not os.path.exists(path):
            raise CLIError(f"no such data file: {path!r}")
        if not os.access(path, os.R_OK):
            raise CLIError(f"cannot read the data file {path!r}: permission denied")


def _check_output(path: str, what: str = "the model") -> None:
    """Fail before any work when ``path`` cannot be written: a missing folder, a directory,
    or a folder where no file can be created (tried with a temporary file named as a
    save's, so one a kill leaves is removed by the next save)."""
    if os.path.isdir(path):
        raise CLIError(f"cannot write {what} to {path!r}: it is a directory; name a file, e.g. "
                       f"-o {os.path.join(path, DEFAULT_OUTPUT)}")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        problem = "is not a directory" if os.path.exists(folder) else "does not exist"
        raise CLIError(f"cannot write {what} to {path!r}: the directory {folder!r} {problem}")
    try:
        probe_writable(path)
    except OSError as error:
        raise CLIError(f"cannot write {what} to {path!r}: {error.strerror}") from None


def _head(source: str) -> bytes | None:
    """The first bytes of a DATA path, gunzipped; of stdin, what can be peeked at without
    consuming it."""
    if source != "-":
        return read_head(source)
    peeked = sys.stdin.buffer.peek(1 << 16)
    if peeked[:2] == b"\x1f\x8b":
        try:
            return zlib.decompressobj(wbits=31).decompress(peeked)
        except zlib.error:
            return None
    return peeked or None


def _is_binary(head: bytes) -> bool:
    sample = head[:4096]
    controls = sum(sample.count(bytes([c])) for c in (*range(9), *range(14, 32), 127))
    return b"\0" in sample or controls > len(sample) // 20


def _detect(sources: Sequence[str]) -> str:
    """The format of the first DATA file, or a CLIError naming the file and the candidates."""
    if not sources:
        return "criteo"  # the synthetic stream
    source = sources[0]
    head = _head(source)
    if not head:
        raise CLIError(f"cannot detect the format of {source!r}: it is empty or cannot be read "
                       f"ahead; pass --format, one of {', '.join(FORMATS)}")
    if _is_binary(head):
        raise CLIError(f"{source!r} is not a text log (binary data in its first bytes): pass a "
                       "click log as text or gzip")
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        return detect_format(line, source)
    except ValueError:
        candidates = _candidates(line)
        raise CLIError(f"cannot tell the format of {source!r} from its first line {line[:60]!r}: "
                       f"it could be {' or '.join(candidates)}; pass "
                       f"{' or '.join('--format ' + c for c in candidates)}") from None


def _candidates(line: bytes) -> list[str]:
    """The formats a line that detect_format could not place partly looks like."""
    colons = {t.count(b":") for t in line.split()[1:]}
    found = [name for name, seen in (("criteo", b"\t" in line), ("vw", b"|" in line),
                                      ("libsvm", 1 in colons), ("libffm", 2 in colons),
                                      ("csv", b"," in line or b";" in line or b"\t" in line))
             if seen]
    return found or list(FORMATS)


def _settings(args, sources: Sequence[str], model=None) -> dict:
    """How this run reads its data: the reader settings the model remembers (predict, eval,
    train --init), else those given or detected. Reading options (--label, --sep) given
    override the model's; schema options (--format, --numeric, --ignore, --hash-indices)
    that differ from the model's are an error, since they define its features."""
    remembered = dict(getattr(model, "reader_settings_", None) or {})
    given = None if args.format in (None, "auto") else args.format
    if given and remembered.get("format") not in (None, given):
        raise CLIError(f"--format {given} conflicts with the model, which was trained on "
                       f"{remembered['format']} data (it remembers --format "
                       f"{remembered['format']}): drop --format")
    fmt = given or remembered.get("format") or _detect(sources)
    settings = {"format": fmt}
    if fmt == "csv":
        settings["sep"] = _sep(args.sep) or remembered.get("sep", ",")
        for name in ("numeric", "ignore"):
            chosen = getattr(args, name)
            if chosen and name in remembered and sorted(chosen) != sorted(remembered[name]):
                was = " ".join(f"--{name} {c}" for c in remembered[name]) or f"no --{name}"
                raise CLIError(f"--{name} {' '.join(chosen)} conflicts with the model, trained "
                               f"with {was}: its columns define the model's features; drop "
                               f"--{name}")
            settings[name] = list(chosen or remembered.get(name, []))
        settings["label"] = args.label or remembered.get("label")
    elif fmt in ("libsvm", "libffm"):
        if args.hash_indices and remembered and not remembered.get("hash_indices"):
            raise CLIError("--hash-indices conflicts with the model, trained with indices as "
                           "buckets: drop --hash-indices")
        settings["hash_indices"] = bool(args.hash_indices or remembered.get("hash_indices"))
    return settings


def _columns(settings: dict, source: str) -> list[str] | None:
    """A CSV's header columns (None for stdin)."""
    line = first_line(source) if source != "-" else None
    return None if line is None else header_columns(line, settings["sep"].encode(), source)


def _label_for(settings: dict, sources: Sequence[str], need: bool) -> None:
    """CSV: the label column, kept if this file has it, else guessed from its header
    (click, label, ...); unlabelled reading (predict) where it has none."""
    if settings["format"] != "csv" or not sources:
        return
    columns = _columns(settings, sources[0])
    if columns is None:
        return
    if settings["label"] in columns:
        return
    if settings["label"] is not None and need:
        raise CLIError(f"the label column {settings['label']!r} is not in the header of "
                       f"{sources[0]!r} ({', '.join(columns)}): name it with --label")
    guess = next((c for c in LABEL_GUESSES if c in columns), None) if need else None
    if need and guess is None:
        raise CLIError(f"{sources[0]!r} has no label column among {', '.join(LABEL_GUESSES)} "
                       f"(columns: {', '.join(columns)}): name it with --label")
    if guess is not None and settings["label"] is None:
        log.info("label column: %s (found in the header; choose it with --label)", guess)
    settings["label"] = guess


def _reader_options(settings: dict) -> dict:
    """The read_data options of the settings' format."""
    if settings["format"] == "csv":
        return {"label": settings["label"], "sep": settings["sep"]}
    if settings.get("hash_indices"):
        return {"hash_indices": True}
    return {}


def _batches(args, settings: dict, hasher, sources: Sequence, chunks: bool = False,
             readers: list | None = None) -> Iterator:
    """Batches of every source in turn; with ``chunks``, unparsed chunks (for train threads).
    A damaged source's readers are appended to ``readers`` (kept, not raised: see train)."""
    for source in sources:
        reader = read_data(source, settings["format"], hasher, batch_size=args.batch_size,
                           on_error=args.on_error, **_reader_options(settings))
        if readers is not None:
            reader.on_damage = "keep"
            readers.append(reader)
        yield from reader.chunks() if chunks else reader


def _model_params(args) -> dict:
    params = {k: getattr(args, k) for k in _model_options() if getattr(args, k, None) is not None}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            raise CLIError(f"--param takes NAME=VALUE, got {item!r}")
        params[name] = json.loads(value) if value[:1] in "[{\"0123456789-" or value in (
            "true", "false", "null") else value
    return params


#: parameters a saved model's state depends on: train --init cannot change them
_FIXED = ("bits", "hash_seed", "numeric_transform", "crosses", "fields", "numeric", "k")


def _new_or_saved_model(args, params: dict):
    if not args.init:
        model = MODELS[args.model or "ftrl"]()
        model.set_params(**params)
        return model
    model = _load(args.init)
    name = next(n for n, cls in MODELS.items() if isinstance(model, cls))
    if args.model not in (None, name):
        raise CLIError(f"--model {args.model} conflicts with --init {args.init}, a {name} model")
    fixed = {k: v for k, v in params.items() if k in _FIXED and v != model.get_params()[k]}
    if fixed:
        raise CLIError(f"--init {args.init}: {', '.join('--' + k.replace('_', '-') for k in fixed)} "
                       "cannot change when continuing a model (its state depends on them)")
    if args.tune:
        raise CLIError("--tune chooses the values of a new model: it cannot be used with --init")
    model.set_params(**params)
    return model


def _load(path: str):
    if os.path.isdir(path):
        raise CLIError(f"MODEL {path!r} is a directory: pass a model file (.fctr)")
    return load(path)


def cmd_train(args) -> int:
    _check_inputs(args.data + args.holdout)
    output = args.output or DEFAULT_OUTPUT
    _check_output(output)
    try:  # a device (-o /dev/null) or a FIFO would be replaced: refused before any work
        destination(output)
    except ModelFileError as error:
        raise CLIError(str(error)) from None
    params = _model_params(args)
    model = _new_or_saved_model(args, params)
    model._validate_params()  # a bad --param fails now, not after the warm-up
    if not isinstance(model, FTRLClassifier):
        # FM learning outweighs parsing, so it learns in threads too; FTRL's does not, and
        # every row's shared hot weights keep FTRL Hogwild from going faster
        model.set_params(n_jobs=args.threads)
    settings = _settings(args, args.data, model if args.init else None)
    _label_for(settings, args.data, need=True)
    if args.data and settings["format"] != "criteo" and not args.init:  # schema from the data
        hasher = hasher_for(settings["format"], args.data[0], label=settings.get("label"),
                            ignore=settings.get("ignore", ()), numeric=settings.get("numeric", ()),
                            sep=settings.get("sep", ","), bits=model.bits,
                            hash_seed=model.hash_seed)
        model.set_params(**{k: v for k, v in hasher.get_params().items()
                            if k in ("fields", "numeric")})
    if args.data:
        if "-" in args.data and model.epochs > 1:
            raise CLIError("stdin can be read once only: use --epochs 1 with '-'")
    if args.holdout_fraction and model.epochs > 1:
        raise CLIError("--holdout-fraction holds rows out of one pass: use --epochs 1, or "
                       "--holdout FILE")
        sources, what = args.data, ", ".join(args.data)
    else:
        from fastctr.io.datasets import make_criteo

        # generated ahead by a background thread (the generator releases the GIL), as a
        # file's bytes would be read, so generating overlaps parsing and learning
        sources = [read_ahead(make_criteo(args.rows, seed=args.seed))
                   for _ in range(model.epochs)]
        what = f"synthetic Criteo-schema stream ({args.rows:,} rows, seed {args.seed})"
    ready_s = warm_up(model) + (0.0 if args.data else _warm_up_synthetic(args.seed))
    log.info("kernels ready in %.2f s (compiled on the first run, loaded from numba's cache "
             "after)", ready_s)
    log.info("training %r on %s", model, what)
    passes = sources if not args.data else itertools.chain.from_iterable(
        itertools.repeat(args.data, model.epochs))
    readers: list = []
    holdout = HoldOut(args.holdout_fraction) if args.holdout_fraction else None
    report = train(model, _batches(args, settings, model.hasher_, list(passes),
                                   chunks=args.threads > 1, readers=readers),
                   report_every=args.report_every, threads=args.threads, tune=args.tune,
                   tune_rows=args.tune_rows, holdout=holdout, progress=Progress(stop=INTERRUPTED))
    if not report["rows"]:
        raise CLIError(f"no rows in {what}: the input is empty, nothing to learn; no model written")
    log.info("trained on %d rows in %.2f s (%s rows/s)", report["rows"], report["seconds"],
             f"{report['rows_per_s']:,.0f}")
    tuned = report.pop("tune", None)
    held_out = report.pop("holdout", None)
    # the size of the feature values the hyperparameters were carried to (1: one-hot data)
    result = {"progressive": _rounded(report), "value_scale": round(model.value_scale_, 6)}
    if tuned is not None:  # what was chosen, without every candidate
        result["tune"] = {k: tuned[k] for k in ("chosen", "rows", "value_scale", "log_loss")
                          if k in tuned}
    if args.holdout:
        result["holdout"] = _rounded(_evaluate(args, settings, model, args.holdout))
    if held_out is not None:  # --holdout-fraction's rows, scored by the final model
        result["held_out"] = _rounded(held_out)
    damage = [str(r.damage) for r in readers if r.damage is not None]
    if damage:
        result["damaged"] = damage
    if args.data:
        model.reader_settings_ = settings
    print(json.dumps(result, indent=2, allow_nan=False))
    try:
        model.save(output)
    except ModelFileError as error:  # the path became a directory or a device meanwhile
        raise CLIError(str(error), EXIT_FAILURE) from None
    except OSError as error:
        raise CLIError(f"could not write the model to {output!r}: {error.strerror or error}",
                       EXIT_FAILURE) from None
    log.info("model written to %s%s", output, "" if args.output else " (the default; choose "
             "the path with -o)")
    if damage:
        log.error("fastctr train: damaged data: %s; the model of the %d rows before the damage "
                  "was written to %s (exit status %d)", "; ".join(damage), report["rows"],
                  output, EXIT_PARTIAL)
        return EXIT_PARTIAL
    return EXIT_OK


def _warm_up_synthetic(seed: int) -> float:
    """The generator's kernels, compiled or loaded before the timed run (see warm_up)."""
    from fastctr.io.datasets import make_criteo

    start = time.perf_counter()
    b"".join(make_criteo(1, seed=seed))
    return time.perf_counter() - start


def _predictions(args, settings: dict, model, sources: Sequence[str]):
    for batch in _batches(args, settings, model.hasher_, sources):
        yield batch, model.predict_proba(batch)[:, 1]


def _model_and_settings(args, need_labels: bool):
    model = _load(args.model)
    _check_inputs(args.data)
    settings = _settings(args, args.data, model)
    _label_for(settings, args.data, need=need_labels)
    return model, settings


def cmd_predict(args) -> int:
    if args.output:
        _check_output(args.output, "the predictions")
    model, settings = _model_and_settings(args, need_labels=False)
    ids = _ids(args, settings)
    out = open(args.output, "w") if args.output else sys.stdout
    try:
        for batch, p in _predictions(args, settings, model, args.data):
            columns = [list(map("{:.6f}".format, p))]
            if ids is not None:
                columns.insert(0, list(itertools.islice(ids, len(p))))
            if args.with_label:
                if batch.labels is None:
                    raise CLIError("--with-label: this data has no label column")
                columns.append(list(map("{:g}".format, batch.labels)))
            out.write("\n".join(map("\t".join, zip(*columns))) if len(columns) > 1
                      else "\n".join(columns[0]))
            out.write("\n")
    finally:
        if out is not sys.stdout:
            out.close()
    if args.output:
        log.info("predictions written to %s", args.output)
    return EXIT_OK


def _ids(args, settings: dict) -> Iterator[str] | None:
    """The values printed before each probability: row numbers, or a CSV column's values."""
    if args.id_column is None:
        return None
    if args.id_column == "line":
        return map(str, itertools.count(1))
    if settings["format"] != "csv":
        raise CLIError(f"--id-column {args.id_column}: a column name needs csv data; use "
                       "--id-column line for the row number")
    if args.on_error == "skip" or "-" in args.data:
        raise CLIError("--id-column NAME reads the file twice: it needs files (not '-') and "
                       "--on-error raise")
    return itertools.chain.from_iterable(_column_values(s, args.id_column, settings["sep"])
                                         for s in args.data)


def _column_values(source: str, column: str, sep: str) -> Iterator[str]:
    """The values of one CSV column, a row at a time (blank lines skipped, as the reader does)."""
    from fastctr.io.sources import open_source

    blocks, name = open_source(source)
    tail, index = b"", None
    for block in itertools.chain(blocks, [b"\n"]):
        lines = (tail + block).split(b"\n")
        tail = lines.pop()
        for line in lines:
            line = line.rstrip(b"\r")
            if index is None:
                columns = header_columns(line, sep.encode(), name)
                if column not in columns:
                    raise CLIError(f"--id-column {column}: no such column in {name!r} "
                                   f"({', '.join(columns)})")
                index = columns.index(column)
            elif line:
                yield line.split(sep.encode())[index].decode(errors="replace")


def _evaluate(args, settings: dict, model, sources: Sequence[str]) -> dict:
    """The evaluation report of ``model`` on ``sources``: what can be computed, with a note
    for each metric that cannot (AUC and normalized entropy need both classes)."""
    ys, ps = [], []
    for batch, p in _predictions(args, settings, model, sources):
        if batch.labels is None:
            raise CLIError(f"eval needs labelled data: {', '.join(sources)} has no label column")
        ys.append(batch.labels)
        ps.append(p)
    if not ys:
        raise CLIError(f"no rows in {', '.join(sources)}: the input is empty, nothing to evaluate")
    return metrics.evaluation_report(np.concatenate(ys), np.concatenate(ps))


def cmd_eval(args) -> int:
    model, settings = _model_and_settings(args, need_labels=True)
    report = _rounded(_evaluate(args, settings, model, args.data))
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        for key, value in report.items():
            if key == "notes":
                continue
            print(f"{key:<20} {'n/a' if value is None else value}")
        for note in report.get("notes", []):
            print(f"note: {note}")
    return EXIT_OK


def cmd_serve(args) -> int:
    try:
        importlib.import_module(args.server)

        from fastctr.service.app import Settings, build_app
        from fastctr.service.arms import parse_ab
    except ImportError as e:
        raise CLIError(f"serving needs the optional dependencies ({e.name} is missing): "
                       "pip install \"fastctr[serve]\"") from None
    if os.path.isdir(args.model):
        raise CLIError(f"MODEL {args.model!r} is a directory: pass a model file (.fctr)")
    if args.snapshot_every is not None and not args.learn:
        raise CLIError("--snapshot-every writes what --learn learned: add --learn")
    if args.workers > 1 and args.learn and not args.redis:
        raise CLIError("--workers N > 1 with --learn needs --redis URL: the workers share "
                       "impressions through it and one of them learns")
    try:
        ab = [parse_ab(text) for text in args.ab]
    except ValueError as e:
        raise CLIError(str(e)) from None
    settings = Settings(os.path.abspath(args.model), quality_window=args.quality_window,
                        ab=tuple((os.path.abspath(path), share) for path, share in ab),
                        fallback=args.fallback and os.path.abspath(args.fallback),
                        fallback_ctr=args.fallback_ctr,
                        learn=args.learn,
                        snapshot_every=args.snapshot_every, redis_url=args.redis,
                        max_batch=args.max_batch, impression_ttl=args.impression_ttl,
                        redis_timeout=args.redis_timeout,
                        **({"max_body": args.max_body} if args.max_body else {}))
    _check_address(args.host, args.port)
    app = build_app(settings)  # a bad model file is refused before listening
    if args.server == "uvicorn" and args.workers == 1:
        import uvicorn

        uvicorn.run(app, host=args.host, port=args.port, access_log=args.access_log)
        return EXIT_OK
    # worker processes build the app from the environment (a factory)
    del app
    os.environ.update(settings.to_env())
    with contextlib.ExitStack() as stack:
        if args.workers > 1:  # the workers share their metrics and /stats figures through
            # one fresh directory (prometheus-client's multiprocess mode; see
            # fastctr.service.telemetry)
            stats_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="fastctr-serve-"))
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = stats_dir
            os.environ["FASTCTR_SERVE_STATS_DIR"] = json.dumps(stats_dir)
        _run_server(args.server, args.host, args.port, args.workers, args.access_log)
    return EXIT_OK


def _check_address(host: str, port: int) -> None:
    """A CLIError naming ``host:port`` when it cannot be listened on (in use, not this
    machine's), said the same way under every server (granian would print a Rust trace)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
            probe.bind(address)
    except OSError as e:
        raise CLIError(f"cannot listen on {host}:{port}: {e.strerror or e} (another process "
                       "listening there? pick another --port, or --host)") from None


def _run_server(server: str, host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve ``fastctr.service.app:from_env`` with ``workers`` processes until a signal."""
    factory = "fastctr.service.app:from_env"
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(factory, factory=True, workers=workers, host=host, port=port,
                    access_log=access_log)
        return
    import multiprocessing

    from granian import Granian
    from granian.constants import Interfaces

    # fresh worker processes, as uvicorn's: a fork would inherit this process's imports
    # (prometheus-client chooses its multiprocess values on import) and threads
    multiprocessing.set_start_method("spawn", force=True)

    # RSGI, granian's own interface: the hot routes skip ASGI's messages (see service.gateway)
    Granian(factory, factory=True, interface=Interfaces.RSGI, address=host, port=port,
            workers=workers, websockets=False, log_access=access_log).serve()


def cmd_bench(args) -> int:
    if args.serve:
        return _bench_serve(args)
    from fastctr.bench.peers import run_comparison

    report = run_comparison(
        data=args.data, rows=args.rows, test_rows=args.test_rows, out=args.out, peers=args.only,
        bits=args.bits, river_rows=args.river_rows, river_fm_rows=args.river_fm_rows,
        latency_calls=args.latency_calls, lgbm_rounds=args.lgbm_rounds)
    print(report["table"])
    log.info("written: %s", ", ".join(f for f in report["files"].values() if f))
    return 0


def _bench_serve(args) -> int:
    from fastctr.bench.serve_load import run_serve_bench

    try:
        report = run_serve_bench(args.out, duration=args.duration,
                                 concurrency=tuple(args.concurrency),
                                 feedback_rate=args.feedback_rate, bits=args.bits,
                                 generator=args.generator, server=args.server)
    except RuntimeError as e:  # no load generator, or a service that did not start
        raise CLIError(str(e)) from None
    print(report["table"])
    log.info("written: %s", ", ".join(f for f in report["files"].values() if f))
    return EXIT_OK


def _rounded(report: dict) -> dict:
    """Floats rounded; a non-finite one (no rows, one class) becomes None (JSON null)."""
    return {k: (round(v, 6) if math.isfinite(v) else None) if isinstance(v, float) else v
            for k, v in report.items()}


#: Python call syntax in library messages -> the command-line words for the same thing
_CLI_WORDS = ((re.compile(r"pass on_error='skip'"), "pass --on-error skip"),
              (re.compile(r"pass format= one of \(([^)]*)\)"),
               lambda m: "pass --format, one of " + m.group(1).replace("'", "")),
              (re.compile(r"pass hash_indices=True"), "pass --hash-indices"))


def _in_cli_words(message: str) -> str:
    for pattern, words in _CLI_WORDS:
        message = pattern.sub(words, message)
    return message


def _format_hint(args) -> str:
    """For a data error under a --format given: the format the first file looks like, when
    it is another one."""
    fmt, data = getattr(args, "format", None), getattr(args, "data", None)
    if fmt in (None, "auto") or not data:
        return ""
    try:
        detected = _detect(data)
    except (CLIError, OSError, ValueError):
        return ""
    return (f" ({data[0]} looks like {detected} data: try --format {detected})"
            if detected != fmt else "")


#: set by Ctrl-C (SIGINT) while a command runs; training stops at its next batch
INTERRUPTED = threading.Event()


def _interrupt(signum, frame) -> None:
    """SIGINT: raise KeyboardInterrupt where the main thread is, as Python does, and set
    INTERRUPTED, so that training stops at its next batch even if that KeyboardInterrupt
    landed where Python drops it (a finalizer, a background wait)."""
    INTERRUPTED.set()
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; errors are one line on stderr with the exit status of EXIT_CODES."""
    args = _parser().parse_args(argv)
    if args.command == "train" and threading.current_thread() is threading.main_thread():
        INTERRUPTED.clear()
        signal.signal(signal.SIGINT, _interrupt)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    commands = {"train": cmd_train, "predict": cmd_predict, "eval": cmd_eval, "bench": cmd_bench,
                "serve": cmd_serve}
    try:
        return commands[args.command](args)
    except CLIError as e:
        log.error("fastctr %s: %s", args.command, e)
        return e.status
    except KeyboardInterrupt:
        untouched = {"train": f"; {args.output or DEFAULT_OUTPUT} left as it was",
                     "predict": f"; {args.output} may be incomplete" if getattr(
                         args, "output", None) else ""}.get(args.command, "")
        log.error("fastctr %s: interrupted%s", args.command, untouched)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `fastctr predict ... | head`
        sys.stdout = open(os.devnull, "w")  # nothing more to flush into the closed pipe
        return EXIT_OK
    except (ValueError, TypeError, OSError) as e:  # data and schema errors, unreadable files
        hint = _format_hint(args) if isinstance(e, (ParseError, ValueError)) else ""
        message = str(e) if not isinstance(e, OSError) or not e.filename else (
            f"{e.filename}: {e.strerror}")
        log.error("fastctr %s: %s%s", args.command, _in_cli_words(message), hint)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
