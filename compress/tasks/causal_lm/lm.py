"""Decoders: a random GPT-2-style (or Llama, ...) teacher from a config, pretrained ones from the hub or a
folder (safetensors only unless allowed), what a run saved, and students built from a teacher: its layers,
a smaller config, or a smaller pretrained model."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from compress import models
from compress.config import PACKAGE_PREFIX, gguf_file, resolve_model_path
from compress.data import collate
from compress.errors import CompressError
from compress.preflight import check_model_folder
from compress.students import resized_config
from compress.tasks.causal_lm.text import train_bpe_tokenizer

DEFAULT_VOCAB = 4096
POSITIONS = {"gpt2": "n_positions"}  # the config key of the position table, where it is not max_position_embeddings


def build_random(tcfg, train_text: str, max_length: int):
    """A randomly initialised decoder from ``teacher.architecture`` and a byte-level BPE tokenizer trained on
    the training text (``architecture.vocab_size`` tokens, default 4096)."""
    from transformers import AutoModelForCausalLM

    random_config(tcfg, DEFAULT_VOCAB, {}, max_length)  # an unsupported architecture fails before the tokenizer trains
    tokenizer = train_bpe_tokenizer(train_text, int((tcfg.architecture or {}).get("vocab_size", DEFAULT_VOCAB)),
                                    max_length)
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    return AutoModelForCausalLM.from_config(random_config(tcfg, len(tokenizer), ids, max_length)), tokenizer


def random_config(tcfg, vocab_size: int, ids: dict, max_length: int):
    """The transformers config of the random decoder ``teacher.architecture`` describes, with the run's vocabulary
    and special token ids and (unless given) a position table of max(2 x max_length, 256): what build_random
    builds, and what compress.config.shapes builds at load to check the shapes before anything runs."""
    from transformers import AutoConfig

    arch = dict(tcfg.architecture or {})
    model_type = arch.pop("model_type", None)
    if not model_type:
        raise CompressError("teacher.architecture.model_type: required (e.g. gpt2 or llama)")
    if model_type not in models.DECODER_LAYERS:
        raise CompressError(f"teacher.architecture.model_type: {model_type!r} is not a supported decoder; "
                            f"supported: {', '.join(sorted(models.DECODER_LAYERS))}")
    arch.pop("vocab_size", None)  # the tokenizer's size (trained to architecture.vocab_size tokens)
    arch.setdefault(POSITIONS.get(model_type, "max_position_embeddings"), max(2 * max_length, 256))
    try:
        return AutoConfig.for_model(model_type, vocab_size=vocab_size, **ids, **arch)
    except (TypeError, ValueError) as exc:
        raise CompressError(f"teacher.architecture: {exc}") from None


def load_pretrained(spec: str, allow_pickle: bool = False, trust_remote_code: bool = False, key: str = "teacher.model"):
    """A causal LM and its tokenizer from a hub id, a folder or package:<module> (safetensors only unless
    ``allow_pickle``); a tokenizer without a pad token pads with its eos token (padding is masked)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_file(spec)
    if not gguf and spec.startswith(PACKAGE_PREFIX) and importlib.util.find_spec(spec[len(PACKAGE_PREFIX):]) is None:
        raise CompressError(f"{key}: Python package '{spec[len(PACKAGE_PREFIX):]}' is not installed")
    path = str(gguf.parent) if gguf else resolve_model_path(spec, key)
    local = Path(path)
    if local.is_dir() and not gguf:  # pickle-only weights, remote code, a truncated safetensors or JSON file: refused here
        check_model_folder(local, key, allow_pickle, trust_remote_code)
    weights = {"gguf_file": gguf.name} if gguf else {"use_safetensors": None if allow_pickle else True}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code,
                                                  **({"gguf_file": gguf.name} if gguf else {}))
        model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=trust_remote_code, dtype="float32",
                                                     **weights)
    except Exception as exc:  # transformers, tokenizers and safetensors each raise their own kinds
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise CompressError(f"{key}: could not load {spec!r}: {first}") from None
    if gguf:
        _gguf_eos(model, tokenizer)
    _pad(model, tokenizer)
    return model, tokenizer


def _gguf_eos(model, tokenizer) -> None:
    """transformers 4.57 reads a GGUF tokenizer's end-of-sequence token wrong for SmolLM2 (<|im_start|>, id 1,
    where the file's metadata and the model's config say <|im_end|>, id 2): the model config's id wins."""
    eos = model.config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    if eos is not None and tokenizer.eos_token_id != eos and 0 <= eos < len(tokenizer):
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(eos)


def _pad(model, tokenizer) -> None:
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise CompressError(f"{getattr(model, 'name_or_path', 'model')}: the tokenizer has neither a pad nor an "
                                "eos token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id


def load_saved(folder: Path):
    """A causal LM this run saved (safetensors) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (folder / "model.safetensors").is_file():
        raise CompressError(f"{folder / 'model.safetensors'}: missing; delete the stage folder {folder.parent} and run again")
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True, dtype="float32")
    return model.eval(), AutoTokenizer.from_pretrained(folder)


def build_student(scfg, teacher, tokenizer, rows: list[list[int]] | None = None) -> tuple[Any, Any, dict]:
    """(student, its tokenizer, info) for ``student.method``: layers of the teacher, a smaller config of its
    architecture, or a pretrained model (its own tokenizer; the distill stage's preflight compares them).

    Layers of the teacher, as the Minitron recipe prunes (Muralidharan et al. 2024), ranked on ``rows`` of
    training text: ``student.num_layers`` without ``student.layers`` keeps the blocks that change their input
    most (block influence, 1 - cosine of a block's input and output, Men et al. 2024), and
    ``student.intermediate_size`` keeps the feed-forward neurons of largest mean activation times the norm of
    the weights reading them (compress.models.prune_ffn)."""
    if scfg.method == "layers":
        info: dict = {"method": "layers", "architecture": teacher.config.model_type}
        layers = scfg.layers
        if layers is None and scfg.num_layers is not None:
            layers, info["block_influence"] = ranked_layers(teacher, rows or [], scfg.num_layers)
        student, kept = models.student_from_layers(teacher, layers, models.DECODER_LAYERS)
        info["layers"] = kept
        if scfg.intermediate_size is not None:
            info["ffn"] = models.prune_ffn(student, scfg.intermediate_size, _batches(rows or [], tokenizer.pad_token_id),
                                           registry=models.DECODER_LAYERS)
        return student, tokenizer, info
    if scfg.method == "config":
        student = smaller(teacher, scfg)
        spec = models.layer_spec(student.config.model_type, registry=models.DECODER_LAYERS)
        sizes = {k: getattr(student.config, getattr(spec, k)) for k in ("count", "width", "heads", "ffn")}
        return student, tokenizer, {"method": "config", "architecture": student.config.model_type, **sizes}
    student, student_tokenizer = load_pretrained(scfg.model, scfg.allow_pickle, scfg.trust_remote_code, key="student.model")
    return student, student_tokenizer, {"method": "pretrained", "architecture": student.config.model_type,
                                        "model": scfg.model}


def smaller(teacher, scfg):
    """The teacher's decoder architecture, fewer and/or narrower layers, randomly initialised; at the teacher's
    width the token (and position) embeddings are copied from it."""
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = models.layer_spec(teacher.config.model_type, registry=models.DECODER_LAYERS)
    values = resized_config(teacher, scfg, spec)
    width, heads = values[spec.width], values[spec.heads]
    if values.get("num_key_value_heads") and heads % values["num_key_value_heads"]:
        values["num_key_value_heads"] = heads  # a head count the teacher's grouping does not divide: no grouping
    if scfg.hidden_size is not None and "head_dim" in values:
        values["head_dim"] = width // heads
    if isinstance(values.get("layer_types"), list):
        values["layer_types"] = values["layer_types"][: values[spec.count]]
    model_type = values.pop("model_type")
    for key in ("architectures", "_name_or_path", "transformers_version", "torch_dtype", "dtype"):
        values.pop(key, None)
    student = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **values))
    if width == getattr(teacher.config, spec.width):
        student.get_input_embeddings().load_state_dict(teacher.get_input_embeddings().state_dict())
        pos_t, pos_s = getattr(getattr(teacher, "transformer", None), "wpe", None), getattr(getattr(student, "transformer", None), "wpe", None)
        if pos_t is not None and pos_s is not None:
            pos_s.load_state_dict(pos_t.state_dict())
        student.tie_weights()
    return student


def output_rows(model) -> int:
    """Rows of the output layer: the vocabulary the model predicts over (may be padded past the tokenizer's)."""
    return int(model.get_output_embeddings().weight.shape[0])


def _batches(rows: list[list[int]], pad_id: int, size: int = 8):
    """(input ids, attention mask) of ``rows`` in batches of ``size``, right-padded (compress.data.collate)."""
    if not rows:
        raise CompressError("student: no training rows to rank layers or neurons on")
    pad = collate(pad_id)
    for i in range(0, len(rows), size):
        batch = pad([(row, 0) for row in rows[i: i + size]])
        yield batch["input_ids"], batch["attention_mask"]


def ranked_layers(teacher, rows: list[list[int]], keep: int) -> tuple[list[int], list[float]]:
    """The ``keep`` blocks of largest block influence on ``rows`` (in order) and every block's influence:
    1 - the mean cosine similarity between a block's input and output hidden states over real tokens."""
    import torch

    n = getattr(teacher.config, models.layer_spec(teacher.config.model_type, registry=models.DECODER_LAYERS).count)
    if not 0 < keep <= n:
        raise CompressError(f"student.num_layers: {keep} is not in 1..{n} (the teacher's layers)")
    total, count = torch.zeros(n, dtype=torch.float64), 0
    teacher.eval()
    with torch.no_grad():
        for ids, mask in _batches(rows, teacher.config.pad_token_id or 0):
            hidden = teacher.base_model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            real = mask.bool()
            for i in range(n):  # hidden_states[n] is after the final norm: the last block's output is compared raw
                a, b = hidden[i][real].double(), hidden[i + 1][real].double()
                total[i] += (1 - torch.nn.functional.cosine_similarity(a, b, dim=-1)).sum()
            count += int(real.sum())
    influence = (total / max(count, 1)).tolist()
    kept = sorted(sorted(range(n), key=lambda i: -influence[i])[:keep])
    return kept, [round(x, 5) for x in influence]


def untie(model) -> bool:
    """Give a model whose output layer shares the word embedding matrix (``tie_word_embeddings``: Llama,
    SmolLM2, GPT-2) its own copy of that matrix, in place, and mark the config untied. The export then holds
    two initializers, the Gather's table and the output MatMul's weight, instead of one table read through a
    Transpose; ONNX Runtime's int4 quantizer skips a shared initializer, and the runtime would hold the shared
    one twice anyway (the table and its transposed copy). True when the model was tied."""
    import torch

    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    if out is None or inp is None or out.weight.data_ptr() != inp.weight.data_ptr():
        return False
    out.weight = torch.nn.Parameter(inp.weight.detach().clone())
    model.config.tie_word_embeddings = False
    if getattr(model.config, "get_text_config", None) is not None:
        model.config.get_text_config().tie_word_embeddings = False
    return True
