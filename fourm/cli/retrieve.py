"""``fourm-retrieve``: cross-modal retrieval with a FourM model bundle.

    fourm-retrieve index --data data/world_model --key-modality rgb --method pooled --out runs/idx_rgb
    fourm-retrieve query --index runs/idx_rgb --cond caption="a red circle" --top-k 5 --out strip.png
    fourm-retrieve eval  --data data/world_model --query caption --key rgb --method pooled --num 500

Items can be several modalities (``--key-modality rgb,depth``, several ``--cond``). ``pooled``
embeds with the mean-pooled encoder output, by default mapped into a space shared by the key and
query modalities with a generalized CCA fitted on paired training samples (``--no-align``: centred
per modality and l2-normalised instead),
``predicted`` with the model's prediction of a global-embedding vector modality (a fine-tuned
model's bundle, e.g. ``--model runs/finetune_ce/bundle`` from ``fourm-bundle``), optionally
``--via caption``: items without a caption get the model's own caption first (chained generation).

``--model`` is a model bundle, as in every command (``--bundle`` is its older spelling); ``--weights DIR``
runs another FourM directory (e.g. a fine-tuned model) with the bundle's tokenizers. A FourM directory
given as ``--model`` still means that, with a deprecation warning.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fourm.cli import ArgumentParser, parse_assignments, subcommand_main
from fourm.errors import FourmError
from fourm.resources import DEFAULT_BUNDLE
from fourm.utils.atomic import atomic_write_text
from fourm.utils.outputs import check_inputs, claim_output


def _modalities(text: str, what: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise FourmError(f"{what} is empty (expected a modality name, or several separated by commas)")
    return list(dict.fromkeys(names))


def _add_model_args(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    p.add_argument("--model", default=None, metavar="DIR", help="model bundle (default: models/world-default)")
    p.add_argument("--bundle", default=None, metavar="DIR", help="older spelling of --model")
    p.add_argument("--weights", default=None, metavar="DIR",
                   help="another FourM directory (e.g. a fine-tuned model) to use with the bundle's tokenizers")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--batch-size", type=int, default=None, help="items per model call (default 64)")
    p.add_argument("--no-autocast", action="store_true", help="run the model in fp32 (default: bf16 autocast where the device runs bf16 natively, else fp32)")


def _add_method_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", choices=["pooled", "predicted"], default="pooled")
    p.add_argument("--no-align", action="store_true",
                   help="pooled: no cross-modal alignment (per-modality centres and l2-normalisation only)")
    p.add_argument("--align-samples", type=int, default=4000, help="pooled: paired samples to fit the alignment on (default 4000)")
    p.add_argument("--align-dim", type=int, default=32, help="pooled: dimensions of the aligned space (default 32)")
    p.add_argument("--no-center", action="store_true", help="pooled, --no-align: no per-modality centring")
    p.add_argument("--center-predictions", action="store_true",
                   help="predicted: centre each prediction by the mean prediction of its modality set")
    p.add_argument("--no-normalize", action="store_true", help="pooled, --no-align: no l2-normalisation")
    p.add_argument("--align-split", "--center-split", dest="center_split", default=None, metavar="SPLIT",
                   help="split of --data the alignment or centres are fitted on (default: train if present, else "
                   "the evaluated split; eval refuses an alignment fitted on the rows it scores, see --allow-overlap)")
    p.add_argument("--center-samples", type=int, default=256,
                   help="samples per centre (predicted, or pooled with --no-align; default 256)")
    p.add_argument("--vector-modality", default=None, help="predicted: the vector modality (default: the model's only one)")
    p.add_argument("--decoding", choices=["expected", "greedy", "maskgit"], default="expected",
                   help="predicted: expected codes (default), argmax tokens, or maskgit steps")
    p.add_argument("--steps", type=int, default=None, help="predicted maskgit: steps (default: one per token)")
    p.add_argument("--via", default=None, metavar="MODALITY[,MODALITY]",
                   help="predicted: generate these modalities first where an item lacks them (e.g. caption: an "
                   "image is embedded with the model's caption of it), then predict from the completed item")
    p.add_argument("--via-steps", type=int, default=8, help="predicted --via: MaskGIT steps of image modalities (default 8)")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="raw dataset (fourm-data world) or token dataset directory")
    p.add_argument("--split", default="val", help="split to use (default val)")
    p.add_argument("--num", type=int, default=None, help="use only the first N samples")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="fourm-retrieve", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="embed the items of a dataset split and save an index")
    _add_data_args(p)
    p.add_argument("--key-modality", required=True, help="modality (or a,b) of the indexed items")
    p.add_argument("--out", required=True,
                   help="index directory to write (replaced atomically; refused if it is a folder or file this "
                   "command did not write, unless --overwrite; never an input or inside one)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out that this command did not write")
    p.add_argument("--query-modalities", default=None,
                   help="modalities queries may use, aligned with the key's (or centred) and stored with the "
                   "index (default: each one the data has; naming only those you query with aligns them better; "
                   "predicted: a+b for queries holding a and b together)")
    _add_method_args(p)
    _add_model_args(p)
    p.set_defaults(func=run_index)

    p = sub.add_parser("query", help="search an index with raw values and save a picture of the top-k")
    p.add_argument("--index", required=True, help="index directory (fourm-retrieve index)")
    p.add_argument("--cond", action="append", required=True, metavar="MODALITY=VALUE",
                   help='query value, e.g. caption="a red circle" or rgb=photo.png (repeat for several)')
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--out", default=None,
                   help="PNG strip of the query and the top-k items (written atomically; refused if it is a file this "
                   "command did not write, unless --overwrite; never an input or inside one)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file that this command did not write")
    _add_model_args(p)
    p.set_defaults(func=run_query)

    p = sub.add_parser("eval", help="recall@1/5/10 of query -> key retrieval on a dataset split")
    _add_data_args(p)
    p.add_argument("--query", required=True, help="query modality (or a,b)")
    p.add_argument("--key", required=True, help="key modality (or a,b)")
    p.add_argument("--json", default=None,
                   help="also write the report to this JSON file (written atomically; refused if it is a file this "
                   "command did not write, unless --overwrite; never an input or inside one)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file that this command did not write")
    p.add_argument("--allow-overlap", action="store_true",
                   help="evaluate even when the alignment was fitted on rows being evaluated (the recall is then "
                   "optimistic; a warning is printed and the report says how many rows overlap)")
    _add_method_args(p)
    _add_model_args(p)
    p.set_defaults(func=run_eval)
    return parser


# counts checked before any work (a command without the option has no such attribute)
COUNT_OPTIONS = ("batch_size", "steps", "num", "top_k")
# RetrievalSettings fields set from options: its errors name the field, the CLI adds the option
SETTINGS_OPTIONS = {"align_samples": "--align-samples", "align_dim": "--align-dim", "center_samples": "--center-samples",
                    "via_steps": "--via-steps"}  # fmt: skip


def _check_counts(args: argparse.Namespace) -> None:
    """``--batch-size``, ``--steps``, ``--num``, ``--top-k`` are >= 1 (refused before any output or data)."""
    for name in COUNT_OPTIONS:
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise FourmError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


def _settings(args: argparse.Namespace):
    _check_counts(args)
    try:
        return _new_settings(args)
    except FourmError as e:
        message = str(e)
        flags = [flag for field, flag in SETTINGS_OPTIONS.items() if message.startswith(field)]
        raise FourmError(f"{message} ({flags[0]})" if flags else message) from None


def _new_settings(args: argparse.Namespace):
    from fourm.retrieval.settings import RetrievalSettings

    settings = RetrievalSettings(
        method=args.method, center=not args.no_center, normalize=not args.no_normalize,
        center_split=args.center_split, center_samples=args.center_samples, align=not args.no_align,
        center_predictions=args.center_predictions,
        align_samples=args.align_samples, align_dim=args.align_dim,
        vector_modality=args.vector_modality, decoding=args.decoding, steps=args.steps,
        via=_modalities(args.via, "--via") if args.via is not None else [], via_steps=args.via_steps,
        batch_size=args.batch_size or 64, autocast=not args.no_autocast,
    )  # fmt: skip
    settings.validate()  # now, not when the embedder is made after the data is read
    return settings


def _embedder(args, data, modalities: list[str], extra: list[str] | None = None,
              item_sets: list[list[str]] | None = None):
    """Pipeline, settings and embedder with its reference statistics fitted: pooled, the alignment (or
    centres) of ``modalities`` and ``extra`` (None: every modality of the data that the model reads);
    predicted, the centres of ``item_sets`` (default: ``modalities`` together, each of ``extra`` alone)."""
    from fourm.retrieval.settings import fit_reference, load_pipeline, make_embedder

    settings = _settings(args)
    pipe = load_pipeline(args.bundle, args.weights, args.device)
    for m in modalities:
        if data.column(m, pipe) not in data.modalities:
            raise FourmError(f"unknown modality '{m}': {args.data} has {', '.join(data.modalities)}")
    for m in modalities + (extra or []):
        pipe.codec(m)  # unknown modality -> FourmError naming the model's modalities
    _check_via(pipe, settings)
    if extra is None:  # every input the data holds, patch modalities (read from their raw key) included
        mods = pipe.model.config.modalities
        extra = [m for m in mods if mods[m].input and data.column(m, pipe) in data.modalities]
    embedder = make_embedder(pipe, settings, *data.specials(pipe))
    if item_sets is None:
        item_sets = [modalities] + [[m] for m in extra if [m] != modalities]
    reference = fit_reference(embedder, pipe, args.data, list(dict.fromkeys(modalities + extra)), settings,
                              data.split, progress=True, item_sets=item_sets)  # fmt: skip
    return pipe, settings, embedder, reference


def _check_via(pipe, settings) -> None:
    """``--via`` names modalities of the model (checked before the method's own requirements, so that
    a typo is named even when the model could not embed by prediction anyway)."""
    for m in settings.via:
        try:
            pipe.codec(m)
        except FourmError as e:
            raise FourmError(f"--via {m}: {e}") from None


def _is_index(path: Path) -> bool:
    from fourm.retrieval.index import INFO_NAME

    return (path / INFO_NAME).is_file()


QUERY = "fourm-retrieve query"
EVAL = "fourm-retrieve eval"


def _is_eval_report(path: Path) -> bool:
    """A JSON report written by ``fourm-retrieve eval`` (before reports were checked on re-runs)."""
    try:
        report = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and {"query", "key", "settings", "recall", "chance"} <= set(report)


def _claim_file(out: str, flag: str, command: str, inputs: list, overwrite: bool, recognize=None):
    """:func:`fourm.utils.outputs.claim_output` for a single-file output: refused if it is a folder or lies
    under a file, is / contains / lies inside an input, or is a file ``command`` did not write (unless
    ``overwrite``); locked while the command runs."""
    path = Path(out)
    check_inputs(path, inputs, flag)  # first: the message names the input
    if path.is_dir():
        raise FourmError(f"{flag} {out} is a folder; give the path of a file to write")
    parent = next((p for p in path.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise FourmError(f"{flag} {out} lies under {parent}, which is a file, not a folder")
    return claim_output(path, command, inputs, overwrite, recognize, mark=False, flag=flag)


def _cond_inputs(conds: dict[str, str]) -> list[tuple[str, str]]:
    """The --cond values that name existing files (a picture given as the query is an input)."""
    inputs = []
    for name, value in conds.items():
        try:
            is_file = bool(value) and Path(value).is_file()
        except (OSError, ValueError):  # a caption too long for a path, with a NUL, ...
            is_file = False
        if is_file:
            inputs.append((f"--cond {name}", value))
    return inputs


def _choose_model(args: argparse.Namespace) -> None:
    """``--model`` / ``--bundle`` / ``--weights`` -> ``args.bundle``, ``args.weights`` and the options
    that named them (``args.bundle_flag``, ``args.weights_flag``); prints the deprecation line of the
    old ``--model FOURM_DIR``."""
    from fourm.retrieval.settings import choose_model

    choice = choose_model(args.model, args.bundle, args.weights)
    if choice.warning:
        print(choice.warning, file=sys.stderr)
    args.bundle, args.weights = choice.bundle, choice.weights
    args.bundle_flag, args.weights_flag = choice.bundle_flag, choice.weights_flag


def _model_inputs(args: argparse.Namespace, default_bundle: bool = True) -> list[tuple[str, object]]:
    """The bundle and weights as inputs of :func:`claim_output` (``default_bundle``: name the shipped
    bundle when none is given)."""
    bundle = args.bundle or (DEFAULT_BUNDLE if default_bundle else None)
    return [(args.bundle_flag, bundle), (args.weights_flag, args.weights)]


def run_index(args: argparse.Namespace) -> int:
    _check_counts(args)
    _choose_model(args)
    inputs = [("--data", args.data), *_model_inputs(args)]
    with claim_output(args.out, "fourm-retrieve index", inputs, args.overwrite, _is_index):
        return _index(args)


def _index(args: argparse.Namespace) -> int:
    from fourm.generation.bundle import resolve_bundle
    from fourm.retrieval.data import RetrievalData
    from fourm.retrieval.index import EmbeddingIndex

    keys = _modalities(args.key_modality, "--key-modality")
    data = RetrievalData(args.data, args.split, args.num)
    extra, item_sets = None, None
    if args.query_modalities is not None:  # "a,b+c": queries of a alone and of b and c together
        query_sets = [_modalities(e.replace("+", ","), "--query-modalities")
                      for e in _modalities(args.query_modalities, "--query-modalities")]
        extra = list(dict.fromkeys(m for q in query_sets for m in q))
        item_sets = [keys] + [q for q in query_sets if q != keys]
    pipe, settings, embedder, _ = _embedder(args, data, keys, extra, item_sets)
    items, rows = data.items(keys, pipe, batch_size=settings.batch_size, progress=True)
    if not items:
        raise FourmError(f"no sample of {args.data} (split '{args.split}') holds {' and '.join(keys)}")
    embeddings = embedder(items, progress=True)
    info = {
        "settings": settings.to_dict(),
        "embedder": embedder.describe(),
        "key": keys,
        "bundle": str(resolve_bundle(args.bundle).resolve()),
        "model": str(Path(args.weights).resolve()) if args.weights else None,
        "data": str(Path(args.data).resolve()),
        "split": args.split,
        "rows": rows,
    }
    extra_tensors = {f"center.{m}": v for m, v in getattr(embedder, "centers", {}).items()}
    if getattr(embedder, "alignment", None) is not None:
        extra_tensors.update(embedder.alignment.to_tensors())
    index = EmbeddingIndex(embeddings, [data.ids[r] for r in rows], info, extra_tensors)
    index.save(args.out)
    print(f"indexed {len(index)} items ({'+'.join(keys)}, {args.method}, dim {index.dim}) -> {args.out}")
    return 0


def _index_info(index, path: Path) -> dict:
    """The build info of a retrieval index, with the fields ``query`` reads checked (FourmError
    naming the field for an index.json without them or with the wrong types)."""
    info = index.info if isinstance(index.info, dict) else {}
    where = path / "index.json"

    def check(field: str, ok: bool, expected: str) -> None:
        if not ok:
            got = repr(info[field])[:80] if field in info else "nothing"
            raise FourmError(f"corrupt retrieval index {where}: info.{field} must be {expected}, got {got}")

    check("settings", isinstance(info.get("settings"), dict), "a JSON object of retrieval settings")
    key = info.get("key")
    check("key", isinstance(key, list) and bool(key) and all(isinstance(k, str) for k in key), "a list of modality names")
    rows = info.get("rows")
    check("rows", isinstance(rows, list) and len(rows) == len(index)
          and all(isinstance(r, int) and not isinstance(r, bool) and r >= 0 for r in rows),
          f"a list of {len(index)} row numbers")  # fmt: skip
    for field in ("data", "split"):
        check(field, isinstance(info.get(field), str), "a string")
    for field in ("bundle", "model"):
        check(field, info.get(field) is None or isinstance(info.get(field), str), "a string or null")
    return info


def run_query(args: argparse.Namespace) -> int:
    _check_counts(args)
    conds = parse_assignments(args.cond, "--cond")
    _choose_model(args)
    if args.out:  # checked before the index is read, again with the index's data and models once it is
        inputs = [("--index", args.index), *_model_inputs(args, default_bundle=False), *_cond_inputs(conds)]
        with _claim_file(args.out, "--out", QUERY, inputs, args.overwrite):
            return _query(args, conds)
    return _query(args, conds)


def _query(args: argparse.Namespace, conds: dict[str, str]) -> int:
    from fourm.retrieval.align import LinearAlignment
    from fourm.retrieval.data import RetrievalData, pipeline_specials
    from fourm.retrieval.index import EmbeddingIndex
    from fourm.retrieval.settings import RetrievalSettings, load_pipeline, make_embedder
    from fourm.retrieval.strip import save_strip

    index = EmbeddingIndex.load(args.index)
    info = _index_info(index, Path(args.index))
    if args.out:  # the strip shows items of the index's data: never write it there (nor into its models)
        read = [("the index's data", info["data"])]
        read += [("the index's bundle", info["bundle"])] if args.bundle is None else []
        read += [("the index's model", info["model"])] if args.weights is None else []
        check_inputs(args.out, read, "--out")
    # indexes written before the alignment existed have no "align" setting: they were never aligned
    try:
        settings = RetrievalSettings.from_dict({"align": False, **info["settings"]})
    except FourmError as e:
        raise FourmError(f"corrupt retrieval index {args.index}: settings: {e}") from None
    if args.batch_size is not None:
        settings.batch_size = args.batch_size
    settings.autocast = settings.autocast and not args.no_autocast
    pipe = load_pipeline(args.bundle or info.get("bundle"), args.weights or info.get("model"), args.device)
    centers = {k[len("center.") :]: v for k, v in index.extra.items() if k.startswith("center.")}
    alignment = LinearAlignment.from_tensors(index.extra) if settings.method == "pooled" and settings.align else None
    if settings.method == "pooled" and settings.align and alignment is None:
        raise FourmError(f"corrupt retrieval index {args.index}: its settings say aligned, but it stores no alignment")
    embedder = make_embedder(pipe, settings, *pipeline_specials(pipe), centers=centers, alignment=alignment)
    for name in conds:
        pipe.codec(name)  # unknown modality -> FourmError naming the model's modalities
    if settings.method == "predicted" and settings.center_predictions and embedder.set_key(list(conds)) not in centers:
        key = embedder.set_key(list(conds))
        raise FourmError(
            f"the index has no centre for queries of '{key}' (stored: {', '.join(centers) or 'none'}); "
            f"rebuild it with --query-modalities {key}, or without --center-predictions"
        )
    item = {}
    for name, value in conds.items():
        if not pipe.model.config.modalities[name].input:
            raise FourmError(f"modality '{name}' cannot be a query: the model does not read it (input: false)")
        if alignment is not None and name not in alignment.modalities:
            raise FourmError(
                f"the index's alignment does not cover '{name}' (aligned: {', '.join(alignment.modalities)}); "
                f"rebuild it with --query-modalities {name}, or with --no-align"
            )
        if alignment is None and settings.method == "pooled" and settings.center and name not in centers:
            raise FourmError(
                f"the index has no centre for '{name}' (stored: {', '.join(centers) or 'none'}); rebuild it "
                f"with --query-modalities {name}, or use --no-center"
            )
        raw = pipe.check_condition(name, value)  # read once: an empty caption refused, unknown words named
        item[name] = pipe.tokenize(name, [raw])[0]
    scores, found = index.search(embedder([item]), args.top_k)
    scores, found = scores[0].tolist(), found[0].tolist()
    ids = [index.ids[r] for r in found]
    query_text = ", ".join(f"{k}: {v}" for k, v in conds.items())
    print(f"query {query_text}")
    for rank, (s, i) in enumerate(zip(scores, ids)):
        print(f"  #{rank + 1}  {s:.4f}  {i}")
    if args.out:
        shown = info["key"][0]
        data = RetrievalData(info["data"], info["split"])
        values = data.values(shown, [info["rows"][r] for r in found], pipe)
        save_strip(args.out, query_text, shown, values, scores, ids, written_by=QUERY)
        print(f"wrote {args.out}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    _check_counts(args)
    _choose_model(args)
    if args.json:  # claimed before any work: a refused --json costs nothing
        inputs = [("--data", args.data), *_model_inputs(args)]
        with _claim_file(args.json, "--json", EVAL, inputs, args.overwrite, _is_eval_report):
            return _eval(args)
    return _eval(args)


def _eval(args: argparse.Namespace) -> int:
    from fourm.retrieval.data import RetrievalData
    from fourm.retrieval.evaluate import evaluate_pair, format_report

    queries, keys = _modalities(args.query, "--query"), _modalities(args.key, "--key")
    data = RetrievalData(args.data, args.split, args.num)
    _refuse_aligning_on_evaluated_rows(args, data)
    pipe, settings, embedder, reference = _embedder(
        args, data, list(dict.fromkeys(queries + keys)), [], [queries, keys]
    )
    both, rows = data.items(list(dict.fromkeys(queries + keys)), pipe, batch_size=settings.batch_size, progress=True)
    if len(both) < 2:
        raise FourmError(f"{args.data} (split '{args.split}') has {len(both)} samples with both sides: need >= 2")
    q = embedder([{m: it[m] for m in queries} for it in both], progress=True)
    k = embedder([{m: it[m] for m in keys} for it in both], progress=True)
    report = {"query": queries, "key": keys, "settings": settings.to_dict(), **evaluate_pair(q, k)}
    if reference is not None:
        same = _same_data(reference["data"], args.data) and reference["split"] == data.split
        overlap = len(set(reference["rows"]) & set(rows)) if same else 0
        report["reference"] = {k: v for k, v in reference.items() if k != "rows"} | {"overlap": overlap}
        what = (
            f"alignment fitted on {reference['pairs']} pairs (of {reference['requested']} requested)"
            if reference["fitted"] == "alignment" else f"centres fitted on {len(reference['rows'])} samples"
        )  # fmt: skip
        print(f"{what} of split '{reference['split']}'; evaluated on {len(both)} of split '{data.split}'")
        if overlap:
            print(
                f"warning: the {'alignment was' if reference['fitted'] == 'alignment' else 'centres were'} fitted "
                f"on {overlap} of the {len(both)} evaluated rows: "
                f"the recall is optimistic (fit on another split with --align-split)", file=sys.stderr,
            )  # fmt: skip
    print(format_report(f"{'+'.join(queries)} -> {'+'.join(keys)}", report))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0


def _same_data(a: str | Path, b: str | Path) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def _refuse_aligning_on_evaluated_rows(args: argparse.Namespace, data) -> None:
    """FourmError (before any fitting) when the pooled alignment would be fitted on rows that eval
    scores: same dataset and split, both starting at row 0 (unless --allow-overlap)."""
    from fourm.retrieval.settings import center_split

    if args.method != "pooled" or args.no_align or args.allow_overlap:
        return
    ref_split = center_split(args.data, data.split, _settings(args))
    if ref_split != data.split or len(data) == 0:
        return
    shared = min(len(data), args.align_samples)
    why = "the dataset has no train split" if args.center_split is None else f"--align-split {ref_split}"
    raise FourmError(
        f"the alignment would be fitted on split '{ref_split}' of {args.data} ({why}), whose first {shared} rows "
        "eval also scores: pass --align-split with another split (e.g. train), or --allow-overlap to report an "
        "optimistic recall anyway"
    )


main = subcommand_main(build_parser)


if __name__ == "__main__":
    raise SystemExit(main())
