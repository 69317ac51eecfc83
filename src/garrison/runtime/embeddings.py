"""Embeddings for the store's semantic index, named in `store.index.embed`."""

import hashlib
import math
import re
from pathlib import Path
from typing import Any

from langchain_core.embeddings import Embeddings

from garrison.domain.errors import InvalidArgumentError
from garrison.runtime.loader import import_object

_WORD = re.compile(r"\w+")


class HashingEmbeddings(Embeddings):
    """Deterministic, offline bag-of-words embeddings (feature hashing, L2-normalised).

    Texts sharing words land close together; good enough for tests, demos and air-gapped
    setups, not a substitute for a learned model.
    """

    def __init__(self, dims: int = 256) -> None:
        self.dims = dims

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self.dims
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self.dims
            vector[bucket] += 1.0 if digest[4] & 1 else -1.0
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


def resolve_embeddings(reference: str, dims: int, root: Path) -> Any:
    """An Embeddings object (or embedding function) from `path.py:attr` / `module:attr`.

    A class is instantiated with `dims` when it accepts it; `provider:model` strings of
    LangChain's init_embeddings need `langchain` and the provider package installed.
    """
    if reference.startswith(("./", "/")) or ".py:" in reference or _is_module_ref(reference):
        target = import_object(reference, root)
        if isinstance(target, type) and issubclass(target, Embeddings):
            try:
                return target(dims=dims)  # type: ignore[call-arg]
            except TypeError:
                return target()
        return target
    try:
        from langchain.embeddings import init_embeddings  # type: ignore[import-not-found]
    except ImportError:
        raise InvalidArgumentError(
            f"store.index.embed={reference!r} needs `pip install langchain` and the provider "
            "package; or name an embeddings object as 'module:attr'"
        ) from None
    return init_embeddings(reference)


def _is_module_ref(reference: str) -> bool:
    module, _, attr = reference.partition(":")
    return bool(attr) and "." in module
