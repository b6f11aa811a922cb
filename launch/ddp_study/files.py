"""Results written whole or not at all (a full disk leaves the old file or none, never a partial
one), and read back."""
import contextlib
import json
import os


@contextlib.contextmanager
def replacing(path, mode="w", **open_args):
    """A file for `path`'s new content that replaces `path` (os.replace) only when the block
    completes: a failed write (a full disk) leaves the old file or none, never a partial one or
    its temporary. An OSError names `path`, also where write() itself knows no file name."""
    temporary = path + ".tmp"
    try:
        with open(temporary, mode, **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(e, OSError):
            e.filename, e.filename2 = path, None
        raise


def save_figure(fig, path):
    """A plot, written as replacing() writes."""
    with replacing(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_jsonl(path):
    """Every line of a JSON-lines file (metrics.jsonl, steps.jsonl); [] when it is missing."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
