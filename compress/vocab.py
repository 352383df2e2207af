"""Vocabulary trim for edge: keep only the tokens the task data uses.

A BERT-sized vocabulary (30k rows) is often most of a small student's parameters. The task
text uses a fraction of it; :func:`trim_vocabulary` drops the other rows of the word-embedding
matrix and re-indexes the tokenizer to match.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from compress.errors import CompressError

SUPPORTED_MODELS = ("WordLevel", "WordPiece")
# config fields that hold a token id; their rows are kept and the ids re-indexed
CONFIG_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id",
              "unk_token_id", "mask_token_id", "decoder_start_token_id")
MAX_LISTED_IDS = 50


def trim_vocabulary(model, tokenizer, texts: list[str], max_length: int | None = None):
    """A copy of ``model`` and a new tokenizer that know only the tokens ``tokenizer`` produces on ``texts``.

    Kept: every id the tokenizer gives on ``texts`` (truncated at ``max_length`` as training
    does, plus the other pieces of a word cut at that point), every special and added token,
    and the ids named in the model config (pad, bos, eos...). They keep the order of their old ids.

    Why task text tokenizes the same: the normalizer and pre-tokenizer are unchanged; WordLevel
    looks each word up; WordPiece picks, at each point of a word, the longest piece in its
    vocabulary. Longer pieces were not in the old vocabulary so they are not in the new one,
    and the piece it picked is kept, so it picks it again. The trimmed model therefore gives
    the same logits on ``texts``. Other text may tokenize differently: a word whose pieces
    were dropped becomes [UNK] (WordPiece maps a word it cannot spell wholly to [UNK]).

    Returns ``(model, tokenizer, info)``; ``model`` is a trimmed deep copy (the input model is
    left as it was). Tied output embeddings (masked-LM heads) and their bias are trimmed too.
    ``info``: vocab_before, vocab_after (embedding rows), embedding_params_saved,
    bytes_saved_fp32, and kept_ids (old ids) when there are at most 50 of them, else kept_ids_count.
    """
    import torch
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    if not getattr(tokenizer, "is_fast", False):
        raise CompressError(f"vocab trim: needs a fast tokenizer, got {type(tokenizer).__name__}")
    if not texts:
        raise CompressError("vocab trim: no texts given; the trimmed vocabulary would hold only special tokens")
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    kind = state["model"].get("type")
    if kind not in SUPPORTED_MODELS:
        raise CompressError(f"vocab trim: tokenizer model {kind} is not supported; supported: {', '.join(SUPPORTED_MODELS)}")
    embeddings = model.get_input_embeddings()
    if not isinstance(embeddings, torch.nn.Embedding):
        raise CompressError(f"vocab trim: input embeddings are a {type(embeddings).__name__}, not an nn.Embedding")
    rows = embeddings.num_embeddings

    # ids to keep, by old id
    used = _used_ids(tokenizer, texts, max_length)
    kept = set(used) | set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
    config_ids = {attr: getattr(model.config, attr, None) for attr in CONFIG_IDS}
    kept |= {v for v in config_ids.values() if isinstance(v, int) and 0 <= v < rows}
    beyond = sorted(i for i in kept if i >= rows)
    if beyond:
        raise CompressError(f"vocab trim: the tokenizer gives ids {beyond[:5]} but the model has only {rows} embedding rows")

    # new ids: model-vocabulary tokens first, then added tokens outside it (as `tokenizers` numbers them)
    id_to_token = {i: t for t, i in tokenizer.get_vocab().items()}
    in_model = {i for i in state["model"]["vocab"].values()}
    order = sorted(i for i in kept if i in in_model and i in id_to_token)
    order += sorted(i for i in kept if i not in in_model and i in id_to_token)
    order += sorted(i for i in kept if i not in id_to_token)  # config ids with no token: rows only, at the end
    new_id = {old: new for new, old in enumerate(order)}
    token_id = {id_to_token[old]: new for old, new in new_id.items() if old in id_to_token}

    new_tokenizer = _rebuild_tokenizer(state, token_id, tokenizer, Tokenizer, PreTrainedTokenizerFast)
    expected = [[new_id[i] for i in ids] for ids in _encode(tokenizer, texts, max_length)]
    if _encode(new_tokenizer, texts, max_length) != expected:  # the argument above, checked on the data
        raise CompressError("vocab trim: the trimmed tokenizer splits the task text differently; report this as a bug")

    trimmed = copy.deepcopy(model)
    params_saved = _trim_embeddings(trimmed, order, new_id, torch)
    for attr, old in config_ids.items():
        if isinstance(old, int) and old in new_id:
            setattr(trimmed.config, attr, new_id[old])
    trimmed.config.vocab_size = len(order)

    info: dict[str, Any] = {"vocab_before": rows, "vocab_after": len(order),
                            "embedding_params_saved": params_saved,
                            "bytes_saved_fp32": params_saved * 4}
    if len(order) <= MAX_LISTED_IDS:
        info["kept_ids"] = order
    else:
        info["kept_ids_count"] = len(order)
    return trimmed, new_tokenizer, info


def _encode(tokenizer, texts: list[str], max_length: int | None) -> list[list[int]]:
    return tokenizer(texts, truncation=max_length is not None, max_length=max_length)["input_ids"]


def _used_ids(tokenizer, texts: list[str], max_length: int | None) -> set[int]:
    """Ids in the (truncated) encodings, plus every piece of a word that truncation cut in two.

    WordPiece turns a word into [UNK] if any of its pieces is missing, so a half-kept word
    would change the tokens before the cut.
    """
    full = tokenizer(texts)
    if max_length is None:
        return {i for ids in full["input_ids"] for i in ids}
    short = tokenizer(texts, truncation=True, max_length=max_length)
    used = {i for ids in short["input_ids"] for i in ids}
    for row in range(len(texts)):
        seq = full.sequence_ids(row)
        words = full.word_ids(row)
        content = [p for p, s in enumerate(seq) if s is not None]
        seen = sum(1 for s in short.sequence_ids(row) if s is not None)
        cut_words = {words[p] for p in content[:seen] if words[p] is not None}
        used |= {full["input_ids"][row][p] for p in content if words[p] in cut_words}
    return used


def _rebuild_tokenizer(state: dict, token_id: dict[str, int], old, Tokenizer, PreTrainedTokenizerFast):
    """The tokenizer JSON with the vocabulary cut to ``token_id`` and every stored id re-indexed."""
    state = copy.deepcopy(state)
    state["model"]["vocab"] = {t: token_id[t] for t in state["model"]["vocab"] if t in token_id}
    for added in state.get("added_tokens") or []:
        added["id"] = token_id[added["content"]]
    state["added_tokens"] = sorted(state.get("added_tokens") or [], key=lambda a: a["id"])
    if state.get("post_processor"):
        _reindex_processor(state["post_processor"], token_id)
    padding = state.get("padding")
    if isinstance(padding, dict) and padding.get("pad_token") in token_id:
        padding["pad_id"] = token_id[padding["pad_token"]]
    backend = Tokenizer.from_str(json.dumps(state))
    got = backend.get_vocab(with_added_tokens=True)
    if got != token_id:
        raise CompressError("vocab trim: the rebuilt tokenizer numbers its tokens differently; report this as a bug")
    specials = {k: v for k, v in old.special_tokens_map.items() if v}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, model_max_length=old.model_max_length, padding_side=old.padding_side,
        truncation_side=old.truncation_side, model_input_names=list(old.model_input_names),
        clean_up_tokenization_spaces=old.clean_up_tokenization_spaces, **specials,
    )


def _reindex_processor(proc: dict, token_id: dict[str, int]) -> None:
    kind = proc.get("type")
    if kind == "Sequence":
        for inner in proc.get("processors", []):
            _reindex_processor(inner, token_id)
    elif kind == "TemplateProcessing":
        for special in proc.get("special_tokens", {}).values():
            special["ids"] = [token_id[t] for t in special["tokens"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("cls", "sep"):
            token, _ = proc[key]
            proc[key] = [token, token_id[token]]


def _trim_embeddings(model, order: list[int], new_id: dict[int, int], torch) -> int:
    """Keep rows ``order`` of the input (and output) embeddings; returns the parameters removed."""
    old = model.get_input_embeddings()
    rows, dim = old.weight.shape
    index = torch.tensor(order, dtype=torch.long, device=old.weight.device)
    old_pad = old.padding_idx
    new_pad = new_id.get(old_pad) if old_pad is not None else None
    if old_pad is not None and old_pad != new_pad:
        # RoBERTa-style models number positions from the pad id: moving it would move every position
        holders = [type(m).__name__ for m in model.modules()
                   if not isinstance(m, torch.nn.Embedding) and getattr(m, "padding_idx", None) == old_pad]
        if holders:
            raise CompressError(f"vocab trim: {holders[0]} uses the pad id {old_pad} for positions; "
                                f"trimming would move it to {new_pad}")
    output = model.get_output_embeddings()
    tied = output is not None and output.weight is old.weight
    new = torch.nn.Embedding(len(order), dim, padding_idx=new_pad, device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(old.weight.index_select(0, index))
    new.weight.requires_grad_(old.weight.requires_grad)
    model.set_input_embeddings(new)
    saved = (rows - len(order)) * dim
    if output is None:
        return saved
    if not isinstance(output, torch.nn.Linear) or output.out_features != rows:
        raise CompressError(f"vocab trim: output embeddings ({type(output).__name__}) do not match the {rows} input rows")
    head = torch.nn.Linear(output.in_features, len(order), bias=output.bias is not None,
                           device=output.weight.device, dtype=output.weight.dtype)
    with torch.no_grad():
        if tied:
            head.weight = new.weight
        else:
            head.weight.copy_(output.weight.index_select(0, index))
            saved += (rows - len(order)) * output.in_features
        if output.bias is not None:
            head.bias.copy_(output.bias.index_select(0, index))
            saved += rows - len(order)
    model.set_output_embeddings(head)
    model.tie_weights()  # re-links heads that keep their own bias parameter (BERT's LM head)
    return saved
