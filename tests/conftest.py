import gzip
import os

import orjson
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Python's own module docstrings: real, distinct prose (none is a paraphrase of another)
STDLIB_MODULES = [
    "argparse", "logging", "json", "csv", "sqlite3", "asyncio", "unittest", "pathlib", "subprocess",
    "threading", "collections", "itertools", "functools", "datetime", "decimal", "fractions", "statistics",
    "random", "heapq", "bisect", "difflib", "textwrap", "string", "re", "struct", "zipfile", "tarfile",
    "shutil", "tempfile", "pickle", "copy", "pprint", "enum", "typing", "dataclasses", "contextlib", "abc",
    "io", "os", "calendar", "hashlib", "hmac", "base64", "uuid", "socket", "ssl", "http.client",
    "urllib.parse", "email", "configparser", "queue", "multiprocessing", "inspect", "ast", "dis", "tokenize",
    "timeit", "pdb", "doctest", "warnings", "locale", "gettext", "codecs", "operator", "ipaddress", "shlex",
    "optparse", "webbrowser", "runpy", "pkgutil", "lzma", "zlib", "traceback", "tracemalloc"]


def write_jsonl(path, records, compress=None):
    """records: dicts (dumped as JSON) or raw bytes lines (written as they are)."""
    lines = b"".join((r if isinstance(r, bytes) else orjson.dumps(r)) + b"\n" for r in records)
    if compress == "gzip":
        lines = gzip.compress(lines)
    elif compress == "zstd":
        import zstandard

        lines = zstandard.ZstdCompressor().compress(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(lines)
    return path


def read_output_docs(run_dir):
    """All documents a run wrote, as dicts, from jsonl(.gz) or parquet files."""
    docs = []
    folder = os.path.join(run_dir, "documents")
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            for row in pq.read_table(path).to_pylist():
                row["metadata"] = orjson.loads(row["metadata"])  # written as a JSON string
                docs.append(row)
            continue
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rb") as fh:
            docs.extend(orjson.loads(line) for line in fh if line.strip())
    return docs


def make_corpus(folder, n_files=4, docs_per_file=50, prefix="doc"):
    for f in range(n_files):
        write_jsonl(folder / f"part-{f}.jsonl", [
            {"id": f"{prefix}-{f}-{i}", "text": f"Document {f}-{i}. " + "words and more words " * (1 + (i % 17)),
             "source": f"s{f % 2}"} for i in range(docs_per_file)])
    return folder


@pytest.fixture
def run_cfg(tmp_path):
    """Build a validated pipeline config rooted in tmp_path."""
    from textcurate.config import parse_pipeline

    def build(input_, stages=(), tasks=1, workers=1, **output):
        data = {"name": "t", "input": input_, "stages": list(stages),
                "output": {"path": str(tmp_path / "run"), **output},
                "executor": {"type": "local", "tasks": tasks, "workers": workers}}
        return parse_pipeline(data)
    return build


def loopback_server(handler, state: dict):
    """A real HTTP server (http.server in a thread) on a free loopback port: yields (server, base
    URL ending in /v1); ``server.state`` is ``state``. Use as a fixture body (``yield from``)."""
    import threading
    from http.server import ThreadingHTTPServer

    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    srv.state = state
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv, f"http://127.0.0.1:{srv.server_address[1]}/v1"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="session")
def tiny_lm(tmp_path_factory):
    """A one-layer Llama with random weights and MiniLM's tokenizer, saved as a model folder: a real
    transformers model for the engine's tests, made in a second."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from textcurate.embed.embedder import resolve_model

    folder = tmp_path_factory.mktemp("tiny-llama")
    tok = AutoTokenizer.from_pretrained(resolve_model("minilm"))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                      pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)
