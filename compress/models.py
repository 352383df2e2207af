"""Load teachers safely, build tiny random ones, and build students from a teacher's layers.

Per-architecture behaviour is registered, not branched: :func:`register_layers` records where
an architecture keeps its transformer blocks and which config key counts them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compress.config import TeacherConfig, resolve_model_path
from compress.errors import CompressError
from compress.preflight import check_model_folder, json_problem, safetensors_problem

# ----------------------------------------------------------------------------- teacher


def load_pretrained(spec: str, num_labels: int | None = None, allow_pickle: bool = False,
                    trust_remote_code: bool = False, key: str = "teacher.model"):
    """Tokenizer and sequence classifier from a hub id, a local folder or package:<module>.

    Weights load from safetensors only, unless ``allow_pickle`` says otherwise.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model_path(spec, key)
    local = Path(path)
    if local.is_dir():  # pickle-only weights, remote code, a truncated safetensors or JSON file: refused here
        check_model_folder(local, key, allow_pickle, trust_remote_code, num_labels=num_labels)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, use_safetensors=None if allow_pickle else True, **kwargs
        )
    except Exception as exc:  # transformers, tokenizers and safetensors each raise their own kinds
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise CompressError(f"{key}: could not load {spec!r}: {first}") from None
    return model, tokenizer


def build_random(cfg: TeacherConfig, texts: list[str], max_length: int):
    """A randomly initialised classifier from ``cfg.architecture`` and a word-level tokenizer trained on ``texts``."""
    from transformers import AutoModelForSequenceClassification

    tokenizer = train_wordlevel_tokenizer(texts, max_length=max_length)
    config = random_config(cfg, len(tokenizer), tokenizer.pad_token_id, max_length)
    return AutoModelForSequenceClassification.from_config(config), tokenizer


def random_config(cfg: TeacherConfig, vocab_size: int, pad_token_id: int | None, max_length: int):
    """The transformers config of the random teacher ``cfg.architecture`` describes, with the run's vocabulary,
    labels and (unless given) a position table of max(512, max_length): what build_random builds, and what
    compress.config.shapes builds at load to check the shapes before anything runs."""
    from transformers import AutoConfig

    arch = dict(cfg.architecture or {})
    model_type = arch.pop("model_type", None)
    if not model_type:
        raise CompressError("teacher.architecture.model_type: required (e.g. bert)")
    if model_type not in LAYERS:
        raise CompressError(f"teacher.architecture.model_type: {model_type!r} is not supported; supported: {', '.join(sorted(LAYERS))}")
    arch.setdefault("max_position_embeddings", max(512, max_length))
    try:
        return AutoConfig.for_model(model_type, vocab_size=vocab_size, num_labels=cfg.num_labels,
                                    pad_token_id=pad_token_id, **arch)
    except (TypeError, ValueError) as exc:
        raise CompressError(f"teacher.architecture: {exc}") from None


def name_labels(model, names) -> None:
    """The class names (id order) into the model's config, as ``id2label`` and ``label2id``: saved with it, copied
    into the student, exported with it and read by the bundle."""
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {name: i for i, name in enumerate(names)}


def label_names(config) -> list[str] | None:
    """The class names a model config gives, id by id; None where it has transformers' ``LABEL_<i>`` defaults."""
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    names = [id2label.get(i, f"LABEL_{i}") for i in range(len(id2label))]
    return None if names == [f"LABEL_{i}" for i in range(len(names))] else names


def train_wordlevel_tokenizer(texts: list[str], max_length: int):
    """A BERT-style ([CLS] text [SEP]) word-level tokenizer built with ``tokenizers`` from the data itself."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=specials, min_frequency=1))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[(t, tok.token_to_id(t)) for t in ("[CLS]", "[SEP]")],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=max_length,
    )


def load_saved(folder: Path):
    """A model this run saved itself (always safetensors)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    fix = f"delete the stage folder {folder.parent} and run again"
    weights = folder / "model.safetensors"
    if not weights.is_file():
        raise CompressError(f"{weights}: missing; {fix}")
    problems = [safetensors_problem(weights)[0]]
    problems += [json_problem(folder / name) for name in ("config.json", "tokenizer.json", "tokenizer_config.json")
                 if (folder / name).is_file()]
    if any(problems):
        raise CompressError(*(f"{p}; {fix}" for p in problems if p))
    try:
        return (AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True),
                AutoTokenizer.from_pretrained(folder))
    except Exception as exc:  # damage the checks above cannot see (a changed byte inside a tensor's range)
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise CompressError(f"{folder}: cannot be loaded ({first}); {fix}") from None


def save(model, tokenizer, folder: Path) -> None:
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- student from teacher layers


@dataclass(frozen=True)
class LayerSpec:
    """Where an architecture keeps its blocks (``modules``) and the names of its config's size keys."""

    modules: str
    count: str  # number of layers
    width: str = "hidden_size"
    heads: str = "num_attention_heads"
    ffn: str = "intermediate_size"
    ffn_in: str = ""  # inside a block: the linear layer that widens to the feed-forward size ("" = no pruning)
    ffn_out: str = ""  # ... and the one that reads the feed-forward activations back to the width


LAYERS: dict[str, LayerSpec] = {}


def register_layers(model_type: str, modules: str, count: str, **keys: str) -> None:
    LAYERS[model_type] = LayerSpec(modules, count, **keys)


def layer_spec(model_type: str, key: str = "student", registry: dict[str, LayerSpec] | None = None) -> LayerSpec:
    registry = LAYERS if registry is None else registry
    spec = registry.get(model_type)
    if spec is None:
        raise CompressError(f"{key}: '{model_type}' models are not supported; supported: {', '.join(sorted(registry))}")
    return spec


_BERT_FFN = {"ffn_in": "intermediate.dense", "ffn_out": "output.dense"}
register_layers("bert", "bert.encoder.layer", "num_hidden_layers", **_BERT_FFN)
register_layers("roberta", "roberta.encoder.layer", "num_hidden_layers", **_BERT_FFN)
register_layers("xlm-roberta", "roberta.encoder.layer", "num_hidden_layers", **_BERT_FFN)
register_layers("electra", "electra.encoder.layer", "num_hidden_layers", **_BERT_FFN)
register_layers("distilbert", "distilbert.transformer.layer", "n_layers", width="dim", heads="n_heads", ffn="hidden_dim",
                ffn_in="ffn.lin1", ffn_out="ffn.lin2")
# decoders (task causal-lm), where their *ForCausalLM classes keep their blocks: a registry of their own, so the
# classifiers' list of supported architectures is unchanged
DECODER_LAYERS: dict[str, LayerSpec] = {
    "gpt2": LayerSpec("transformer.h", "n_layer", width="n_embd", heads="n_head", ffn="n_inner"),
    **{t: LayerSpec("model.layers", "num_hidden_layers", ffn_in="mlp.gate_proj,mlp.up_proj", ffn_out="mlp.down_proj")
       for t in ("llama", "qwen2", "mistral")},  # gated feed-forward: both widening layers are sliced alike
}


def every_other(n: int) -> list[int]:
    return list(range(0, n, 2))


def student_from_layers(teacher, layers: list[int] | None, registry: dict[str, LayerSpec] | None = None):
    """DistilBERT-style student: a copy of the teacher keeping only ``layers`` (default every other).

    Embeddings, pooler and classifier are copied with the kept blocks, so the student starts
    close to the teacher and distillation has less to recover.
    """
    import torch

    spec = layer_spec(teacher.config.model_type, registry=registry)
    blocks = _getattr_path(teacher, spec.modules)
    n = len(blocks)
    chosen = every_other(n) if layers is None else list(layers)
    out_of_range = [i for i in chosen if i >= n]
    if out_of_range:
        raise CompressError(f"student.layers: {out_of_range} out of range; the teacher has {n} layers (0..{n - 1})")
    student = copy.deepcopy(teacher)
    kept = torch.nn.ModuleList([copy.deepcopy(blocks[i]) for i in chosen])
    for new_index, block in enumerate(kept):
        for module in block.modules():  # attention caches index layers by position
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_index
    parent, _, attr = spec.modules.rpartition(".")
    setattr(_getattr_path(student, parent), attr, kept)
    setattr(student.config, spec.count, len(chosen))
    if isinstance(getattr(student.config, "layer_types", None), list):  # per-layer attention kinds (Qwen2, ...)
        student.config.layer_types = [student.config.layer_types[i] for i in chosen]
    return student, chosen


def prune_ffn(model, size: int, batches, section: str = "student", registry: dict[str, LayerSpec] | None = None) -> dict:
    """Keep the ``size`` feed-forward neurons of every block that carry the most signal, in place.

    A neuron's importance is the mean |activation| it produces on ``batches`` (pairs of input ids and
    attention mask; padding is not counted) times the L2 norm of the weights that read it back, i.e. how much
    it moves the block's output on task text. The widening and narrowing linear layers are sliced with
    ``transformers.pytorch_utils.prune_linear_layer``; the config's feed-forward size follows. Returns, per
    block, the share of the total importance that the kept neurons hold. ``section`` names the config section
    in errors (student, or refine when the distilled student is pruned).
    """
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    registry = LAYERS if registry is None else registry
    spec = layer_spec(model.config.model_type, registry=registry)
    current = getattr(model.config, spec.ffn)
    if not spec.ffn_in:
        raise CompressError(f"{section}.intermediate_size: feed-forward pruning is not offered for "
                            f"'{model.config.model_type}' students; it is for: "
                            f"{', '.join(sorted(t for t, s in registry.items() if s.ffn_in))}")
    if size > current:
        whose = "the teacher's" if section == "student" else "the distilled student's"
        raise CompressError(f"{section}.intermediate_size: {size} is wider than {whose} feed-forward ({current}); "
                            f"pruning can only keep fewer neurons (1..{current})")
    blocks = _getattr_path(model, spec.modules)
    scores = [torch.zeros(current, dtype=torch.float64) for _ in blocks]
    mask: dict[str, torch.Tensor] = {}

    def recorder(i: int):
        def hook(_module, args):
            seen = args[0].detach().abs().double() * mask["tokens"].unsqueeze(-1)
            scores[i].add_(seen.reshape(-1, current).sum(0))
        return hook

    hooks = [_getattr_path(b, spec.ffn_out).register_forward_pre_hook(recorder(i)) for i, b in enumerate(blocks)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for input_ids, attention_mask in batches:
                mask["tokens"] = attention_mask.double()
                model(input_ids=input_ids, attention_mask=attention_mask)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    kept_share = []
    for block, score in zip(blocks, scores):
        w_out = _getattr_path(block, spec.ffn_out)
        importance = score * w_out.weight.detach().double().norm(dim=0)
        keep = importance.topk(size).indices.sort().values
        kept_share.append(round(float(importance[keep].sum() / importance.sum().clamp_min(1e-30)), 4))
        for path in spec.ffn_in.split(","):  # a gated feed-forward widens twice (gate and up), sliced alike
            _setattr_path(block, path, prune_linear_layer(_getattr_path(block, path), keep, dim=0))
        _setattr_path(block, spec.ffn_out, prune_linear_layer(w_out, keep, dim=1))
    setattr(model.config, spec.ffn, size)
    return {"intermediate_size": size, "intermediate_size_before": current, "importance_kept": kept_share}


def prune_heads(model, keep: int, batches, section: str = "student") -> dict:
    """Keep the ``keep`` attention heads of every block that matter most to the task loss, in place.

    A head's importance is |d loss / d mask| summed over ``batches`` (input ids, attention mask, labels): how much
    the hard-label loss moves when the head is scaled (Michel et al. 2019, "Are Sixteen Heads Really Better than
    One?"). The heads are removed with transformers' own ``prune_heads``, which records them in the config
    (``pruned_heads``), so the saved student loads back with its smaller attention. ``section`` names the config
    section in errors.
    """
    import torch

    spec = layer_spec(model.config.model_type)
    heads = getattr(model.config, spec.heads)
    whose = "the teacher's" if section == "student" else "the distilled student's"
    if getattr(model.config, "pruned_heads", None):  # the mask below would not fit the blocks' fewer heads
        raise CompressError(f"{section}.num_attention_heads: {whose} heads were pruned already "
                            f"(student.num_attention_heads); prune them in one place, not both")
    if keep > heads:
        raise CompressError(f"{section}.num_attention_heads: {keep} is more than {whose} {heads} heads; "
                            f"pruning can only keep fewer (1..{heads})")
    layers = len(_getattr_path(model, spec.modules))
    mask = torch.ones(layers, heads, requires_grad=True)
    grads = torch.zeros(layers, heads, dtype=torch.float64)
    was_training = model.training
    model.eval()  # no dropout: the same importance every time
    try:
        for input_ids, attention_mask, labels in batches:
            out = model(input_ids=input_ids, attention_mask=attention_mask, head_mask=mask, labels=labels)
            grads += torch.autograd.grad(out.loss, mask)[0].detach().abs().double()
    finally:
        model.train(was_training)
    kept = grads.topk(keep, dim=1).indices
    pruned = {layer: sorted(set(range(heads)) - set(kept[layer].tolist())) for layer in range(layers)}
    shares = [round(float(grads[layer, kept[layer]].sum() / grads[layer].sum().clamp_min(1e-30)), 4)
              for layer in range(layers)]
    model.prune_heads({layer: h for layer, h in pruned.items() if h})
    return {"heads": keep, "heads_before": heads, "importance_kept": shares,
            "pruned": {str(k): v for k, v in pruned.items()}}


def _setattr_path(obj, path: str, value) -> None:
    parent, _, attr = path.rpartition(".")
    setattr(_getattr_path(obj, parent) if parent else obj, attr, value)


def _getattr_path(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj
