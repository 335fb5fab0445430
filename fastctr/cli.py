"""The ``fastctr`` command: train, predict and evaluate CTR models on click logs.

Progress and logs go to stderr; predictions and reports go to stdout.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import numbers
import sys
import time
from collections.abc import Iterator, Sequence

import numpy as np

from fastctr._validation import Interval, describe, is_valid
from fastctr.io.hashing import HASHING_CONSTRAINTS
from fastctr.models.base import COUNT, NON_NEGATIVE, POSITIVE
from fastctr.online import metrics
from fastctr.io.ahead import read_ahead
from fastctr.models.fm import FFMClassifier, FMClassifier
from fastctr.models.ftrl import FTRLClassifier
from fastctr.serving.files import load
from fastctr.io.detect import FORMATS, detect_format, hasher_for, read_data
from fastctr.io.sources import first_line
from fastctr.online.training import TRAIN_CONSTRAINTS, train, warm_up

log = logging.getLogger("fastctr")

#: model name on the command line -> estimator class
MODELS = {"ftrl": FTRLClassifier, "fm": FMClassifier, "ffm": FFMClassifier}
SYNTHETIC_ROWS = 1_000_000
AT_LEAST_1 = [Interval(numbers.Integral, 1, None, closed="left")]


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastctr", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    tr = sub.add_parser("train", help="train a model on click logs (or the synthetic stream)")
    tr.add_argument("data", nargs="*", help="log files ('-' for stdin; gzip detected). "
                    "None: the embedded synthetic Criteo-schema stream")
    tr.add_argument("-o", "--output", help="where to write the model file")
    tr.add_argument("--model", choices=sorted(MODELS), default="ftrl")
    tr.add_argument("--rows", type=INT["count"], default=SYNTHETIC_ROWS,
                    help=f"rows of the synthetic stream (default {SYNTHETIC_ROWS:,})")
    tr.add_argument("--seed", type=int, default=0, help="seed of the synthetic stream")
    tr.add_argument("--epochs", type=INT["epochs"], help="passes over the data")
    tr.add_argument("--report-every", type=INT["report_every"], default=100_000,
                    help="rows between report lines")
    tr.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="any model parameter, e.g. --param k=8 (repeatable)")
    for name, rule in (("alpha", POSITIVE), ("beta", POSITIVE), ("l1", NON_NEGATIVE),
                       ("l2", NON_NEGATIVE)):
        tr.add_argument(f"--{name}", type=_checked(float, rule), help=f"FTRL {name}")
    tr.add_argument("--bits", type=INT["bits"], help="hash table size 2**bits (18..30)")
    tr.add_argument("--threads", type=INT["threads"], default=1,
                    help="N >= 2: parse in N threads at once; FM and FFM also learn in N "
                         "lock-free (Hogwild) threads, which makes them non-deterministic. "
                         "FTRL learns in order in one thread, with the same result as 1")
    tr.add_argument("--tune", action="store_true",
                    help="choose alpha, l1, l2 (FM/FFM: and eta) by progressive validation on "
                         "the first --tune-rows rows, then train from the first row with them. "
                         "Without it and with no FTRL parameter given, the defaults are scaled "
                         "to the size of the feature values (unchanged for one-hot data)")
    tr.add_argument("--tune-rows", type=INT["count"], default=100_000,
                    help="rows --tune chooses on (default 100,000)")
    _data_options(tr)

    pr = sub.add_parser("predict", help="write one click probability per line to stdout")
    pr.add_argument("model")
    pr.add_argument("data", nargs="+")
    _data_options(pr)

    ev = sub.add_parser("eval", help="AUC, log loss, normalized entropy, calibration")
    ev.add_argument("model")
    ev.add_argument("data", nargs="+")
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    _data_options(ev)

    be = sub.add_parser("bench", help="compare fastctr with VW, River, scikit-learn, LightGBM")
    be.add_argument("--peers", action="store_true", required=True,
                    help="run the peer comparison (same rows, same order, one CPU each)")
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
    return parser


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=("auto",) + FORMATS, default="criteo",
                   help="log format ('auto': told from the first line of the first file)")
    p.add_argument("--batch-size", type=INT["count"], default=100_000)
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="bad lines: stop with the file, line and field, or skip and count them")
    p.add_argument("--label", help="csv: the label column")
    p.add_argument("--ignore", action="append", default=[], metavar="COLUMN",
                   help="csv: a column to leave out (repeatable)")
    p.add_argument("--numeric", action="append", default=[], metavar="COLUMN",
                   help="csv: a numeric column (repeatable); the others are categorical")
    p.add_argument("--sep", default=",", help="csv: the separator, e.g. ',' or 'tab'")
    p.add_argument("--hash-indices", action="store_true",
                   help="libsvm/libffm: hash indices instead of using them as buckets")


def _format_options(args) -> dict:
    """Reader options of the chosen format (read_data rejects the others)."""
    if args.format == "csv":
        return {"label": args.label, "sep": _sep(args)}
    if args.format in ("libsvm", "libffm") and args.hash_indices:
        return {"hash_indices": True}
    return {}


def _sep(args) -> str:
    return "\t" if args.sep == "tab" else args.sep


def _resolve_format(args, sources: Sequence) -> None:
    if args.format == "auto":
        first = sources[0] if sources else None
        args.format = "criteo" if first is None else detect_format(first_line(first), first)


def _batches(args, hasher, sources: Sequence, chunks: bool = False) -> Iterator:
    """Batches of every source in turn; with ``chunks``, unparsed chunks (for train threads)."""
    for source in sources:
        reader = read_data(source, args.format, hasher, batch_size=args.batch_size,
                           on_error=args.on_error, **_format_options(args))
        yield from reader.chunks() if chunks else reader


def _model_params(args) -> dict:
    params = {k: getattr(args, k) for k in ("alpha", "beta", "l1", "l2", "bits", "epochs")
              if getattr(args, k) is not None}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"fastctr: --param takes NAME=VALUE, got {item!r}")
        params[name] = json.loads(value) if value[:1] in "[{\"0123456789-" or value in (
            "true", "false", "null") else value
    return params


def cmd_train(args) -> int:
    model = MODELS[args.model]()
    params = _model_params(args)
    model.set_params(**params)
    model._validate_params()  # a bad --param fails now, not after the warm-up
    if args.model != "ftrl":
        # FM learning outweighs parsing, so it learns in threads too; FTRL's does not, and
        # every row's shared hot weights keep FTRL Hogwild from going faster
        model.set_params(n_jobs=args.threads)
    _resolve_format(args, args.data)
    if args.data and args.format != "criteo":  # the schema comes from the data
        hasher = hasher_for(args.format, args.data[0], label=args.label, ignore=args.ignore,
                            numeric=args.numeric, sep=_sep(args), bits=model.bits,
                            hash_seed=model.hash_seed)
        model.set_params(**{k: v for k, v in hasher.get_params().items()
                            if k in ("fields", "numeric")})
    if args.data:
        if "-" in args.data and model.epochs > 1:
            raise SystemExit("fastctr: stdin can be read once only: use --epochs 1 with '-'")
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
    # given FTRL values are used as they are; the defaults follow the data's value scale
    tune = True if args.tune else ("scale" if not {"alpha", "beta", "l1", "l2"} & set(params)
                                   else False)
    report = train(model, _batches(args, model.hasher_, list(passes), chunks=args.threads > 1),
                   report_every=args.report_every, threads=args.threads, tune=tune,
                   tune_rows=args.tune_rows)
    log.info("trained on %d rows in %.2f s (%s rows/s)", report["rows"], report["seconds"],
             f"{report['rows_per_s']:,.0f}")
    tuned = report.pop("tune", None)
    result = {"progressive": _rounded(report)}
    if tuned is not None:  # what was chosen, without every candidate
        result["tune"] = {k: tuned[k] for k in ("chosen", "rows", "value_scale", "log_loss")
                          if k in tuned}
    print(json.dumps(result, indent=2))
    if args.output:
        model.save(args.output)
        log.info("model written to %s", args.output)
    return 0


def _warm_up_synthetic(seed: int) -> float:
    """The generator's kernels, compiled or loaded before the timed run (see warm_up)."""
    from fastctr.io.datasets import make_criteo

    start = time.perf_counter()
    b"".join(make_criteo(1, seed=seed))
    return time.perf_counter() - start


def _predictions(args):
    model = load(args.model)
    _resolve_format(args, args.data)
    for batch in _batches(args, model.hasher_, args.data):
        yield batch, model.predict_proba(batch)[:, 1]


def cmd_predict(args) -> int:
    out = sys.stdout
    for _, p in _predictions(args):
        out.write("\n".join(map("{:.6f}".format, p)))
        out.write("\n")
    return 0


def cmd_eval(args) -> int:
    ys, ps = [], []
    for batch, p in _predictions(args):
        if batch.labels is None:
            raise SystemExit("fastctr: eval needs labelled data (a label column)")
        ys.append(batch.labels)
        ps.append(p)
    y, p = np.concatenate(ys), np.concatenate(ps)
    report = {
        "rows": int(y.shape[0]),
        "auc": metrics.roc_auc(y, p),
        "log_loss": metrics.log_loss(y, p),
        "normalized_entropy": metrics.normalized_entropy(y, p),
        "calibration": metrics.calibration(y, p),
        "ctr": float(y.mean()),
    }
    if args.json:
        print(json.dumps(_rounded(report)))
    else:
        for key, value in _rounded(report).items():
            print(f"{key:<20} {value}")
    return 0


def cmd_bench(args) -> int:
    from fastctr.bench.peers import run_comparison

    report = run_comparison(
        data=args.data, rows=args.rows, test_rows=args.test_rows, out=args.out, peers=args.only,
        bits=args.bits, river_rows=args.river_rows, river_fm_rows=args.river_fm_rows,
        latency_calls=args.latency_calls, lgbm_rounds=args.lgbm_rounds)
    print(report["table"])
    log.info("written: %s", ", ".join(f for f in report["files"].values() if f))
    return 0


def _rounded(report: dict) -> dict:
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in report.items()}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    commands = {"train": cmd_train, "predict": cmd_predict, "eval": cmd_eval, "bench": cmd_bench}
    try:
        return commands[args.command](args)
    except (ValueError, TypeError, FileNotFoundError) as e:
        log.error("fastctr %s: %s", args.command, e)
        return 2
    except BrokenPipeError:  # e.g. `fastctr predict ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
