"""Command line: tune layers ahead of time and manage the tuning cache.

    python -m cnnkernels info
    python -m cnnkernels tune "conv2d:input=1x64x56x56,weight=64x64x3x3,padding=1" [--threads 1 2]
    python -m cnnkernels tune --file calls.json      # [{"op": "conv2d", "input": [1,64,56,56], "weight": [...], ...}]
    python -m cnnkernels show | clear | export FILE | import FILE
"""
import argparse
import json
import sys

import numpy as np


def parse_spec(spec):
    """'conv2d:input=1x3x32x32,weight=8x3x3x3,stride=2' -> call dict (shapes as lists, 'AxB' as tuples)."""
    op, _, rest = spec.partition(":")
    call = {"op": op.strip()}
    for item in filter(None, rest.split(",")):
        name, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"spec item {item!r} must look like name=value")
        if "x" in value:
            try:
                call[name] = [int(v) for v in value.split("x")]
            except ValueError:
                raise ValueError(f"spec item {item!r}: a shape must be ints joined by 'x', such as 1x64x56x56") \
                    from None
        elif value.lstrip("-").isdigit():
            call[name] = int(value)
        else:
            call[name] = value
    return call


def run_call(call):
    """Run one call description on random data (which tunes it when its key is new); returns the explanation."""
    import cnnkernels as ck
    from cnnkernels._arrays import check_size
    if not isinstance(call, dict) or "op" not in call or "input" not in call:
        raise ValueError(f"a call must name its op and input shape (op, input[, weight], arguments), got {call!r}")
    call = dict(call)
    op = call.pop("op")
    dtype = np.dtype(call.pop("dtype", "float32"))
    rng = np.random.default_rng(0)
    args = []
    for name in ("input", "weight"):
        if name in call:
            shape = call.pop(name)
            if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
                raise ValueError(f"{name} must be a shape (a list of ints >= 0), got {shape!r}")
            check_size(shape, dtype.itemsize, name)   # (before the random data is drawn)
            args.append(rng.standard_normal(shape).astype(dtype))
    for name, value in list(call.items()):
        if isinstance(value, list):
            call[name] = tuple(value)
    return ck.explain(op, *args, verbose=False, **call)


def _load_json(path):
    with open(path) as f:
        try:
            return json.load(f)
        except ValueError as exc:
            raise ValueError(f"{path} is not JSON ({exc})") from None


def main(argv=None):
    """The command line; a bad spec, file or argument is reported in one line (exit status 2), not a traceback."""
    try:
        return _main(argv)
    except (ValueError, TypeError, OSError) as exc:   # (json's decode error is a ValueError)
        print(f"python -m cnnkernels: error: {exc}", file=sys.stderr)
        return 2


def _main(argv):
    import cnnkernels as ck
    from cnnkernels import _autotune
    parser = argparse.ArgumentParser(prog="python -m cnnkernels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="backends, ISA, threads, cache location")
    tune = sub.add_parser("tune", help="tune calls ahead of time")
    tune.add_argument("specs", nargs="*", help='e.g. "conv2d:input=1x64x56x56,weight=64x64x3x3,padding=1"')
    tune.add_argument("--file", help="JSON list of calls")
    tune.add_argument("--threads", type=int, nargs="+", default=[ck.get_num_threads()])
    sub.add_parser("show", help="list the cached choices")
    sub.add_parser("clear", help="empty the tuning cache")
    exp = sub.add_parser("export", help="write the tuning cache to a file (ship it with an application)")
    exp.add_argument("path")
    imp = sub.add_parser("import", help="merge a file written by export into the tuning cache")
    imp.add_argument("path")
    args = parser.parse_args(argv)
    cache = _autotune.cache()

    if args.command == "info":
        print(json.dumps({**ck.info(), "autotune": ck.get_autotune(), "cache": cache.path}, indent=1))
    elif args.command == "tune":
        calls = [parse_spec(s) for s in args.specs]
        if args.file:
            listed = _load_json(args.file)
            if not isinstance(listed, list):
                raise ValueError(f"{args.file} must hold a JSON list of calls, got {type(listed).__name__}")
            calls += listed
        if not calls:
            parser.error("tune needs at least one spec or --file")
        for threads in args.threads:
            ck.set_num_threads(threads)
            for call in calls:
                report = run_call(call)
                print(f"[{threads} thread{'s' if threads > 1 else ''}] {report}")
        print(f"cache: {cache.path}")
    elif args.command == "show":
        for key, entry in sorted(cache.entries().items()):
            print(f"{entry['choice']:<14} {key}")
    elif args.command == "clear":
        cache.clear()
        print(f"cleared {cache.path}")
    elif args.command == "export":
        with open(args.path, "w") as f:
            json.dump({"format": "cnnkernels-tuning", "entries": cache.entries()}, f, indent=1, sort_keys=True)
        print(f"exported {len(cache.entries())} entries to {args.path}")
    elif args.command == "import":
        data = _load_json(args.path)
        entries = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(entries, dict):
            sys.exit(f"{args.path} is not a file written by 'python -m cnnkernels export'")
        from cnnkernels._tuning_cache import valid_entries
        good = valid_entries(entries)
        cache.update(good)
        print(f"imported {len(good)} entries into {cache.path}"
              + (f" (left out {len(entries) - len(good)} malformed)" if len(good) < len(entries) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
