"""``explain``: which kernel a call runs, why, and what the candidates measured."""
from . import _autotune, _registry, functional


class Explanation(dict):
    """The decision for one call: op, choice, source (tuned/cache/heuristic/forced), candidate timings."""

    def __str__(self):
        lines = [f"{self.get('op')}: runs {self.get('choice')} ({self.get('source')}"
                 + (f", tuned in {self['tuning_seconds']:.3f} s" if self.get("tuning_seconds") else "") + ")"]
        status = self.get("status", {})
        candidates = self.get("candidates", {})
        width = max([16] + [len(name) + 1 for name in candidates])
        for name, t in sorted(candidates.items(), key=lambda kv: (kv[1] is None, kv[1] or 0)):
            mark = "*" if name == self.get("choice") else " "
            timing = f"{t * 1e3:10.3f} ms" if t is not None else f"{'-':>13}"
            lines.append(f" {mark} {name:<{width}}{timing}  {status.get(name, '')}")
        return "\n".join(lines)


def explain(op, *args, retune=False, verbose=True, **kwargs):
    """Run ``cnnkernels.<op>(*args, **kwargs)`` and report the kernel choice; ``retune=True`` times afresh.

    Returns an :class:`Explanation` (a dict) and, unless ``verbose=False``, prints it.
    """
    _registry.family(op)   # validates the name
    if op not in _registry.OPS:
        raise ValueError(f"op must be a function name such as 'conv2d', got {op!r}")
    with _autotune.record(retune=retune) as rec:
        getattr(functional, op)(*args, **kwargs)
    report = Explanation((k, v) for k, v in rec.items() if k != "retune")
    if verbose:
        print(report)
    return report
