"""Ways to build a student, chosen by ``student.method`` in the YAML.

- ``layers``: a copy of the teacher keeping some of its blocks (every other by default), or with
  ``student.architecture: distilbert`` the same blocks mapped into a DistilBERT model
  (Sanh et al. 2019);
- ``config``: the teacher's architecture, smaller (fewer layers and/or narrower), randomly
  initialised; a hidden-state loss with a learned projection bridges the widths;
- ``pretrained``: a smaller pretrained model by hub id or folder.
"""

from __future__ import annotations

import copy

from compress import models
from compress.errors import CompressError


def build(scfg, teacher, tokenizer, sample=None, max_length: int = 128):
    """(student, tokenizer, info) for ``scfg`` (a StudentConfig) and a loaded teacher.

    ``sample`` (the training Split) is read only to prune a ``layers`` student: its attention heads
    (``scfg.num_attention_heads``), then its feed-forward neurons (``scfg.intermediate_size``), ranked on the first
    ``scfg.prune_samples`` sentences cut to ``max_length`` tokens.
    """
    if scfg.method == "layers":
        if scfg.architecture == "distilbert":
            student, kept = bert_to_distilbert(teacher, scfg.layers)
        else:
            student, kept = models.student_from_layers(teacher, scfg.layers)
        info = {"method": "layers", "architecture": student.config.model_type, "layers": kept}
        if scfg.num_attention_heads is None and scfg.intermediate_size is None:
            return student, tokenizer, info
        info.update(prune(student, tokenizer, sample, scfg.num_attention_heads, scfg.intermediate_size,
                          scfg.prune_samples, max_length, "student"))
        return student, tokenizer, info
    if scfg.method == "config":
        student = smaller(teacher, scfg)
        spec = models.layer_spec(student.config.model_type)
        sizes = {k: getattr(student.config, getattr(spec, k)) for k in ("count", "width", "heads", "ffn")}
        return student, tokenizer, {"method": "config", "architecture": student.config.model_type, **sizes}
    student, student_tokenizer = models.load_pretrained(
        scfg.model, teacher.config.num_labels, scfg.allow_pickle, scfg.trust_remote_code, key="student.model"
    )
    # the student learns the teacher's ids: it takes the teacher's names for them
    models.name_labels(student, [teacher.config.id2label[i] for i in range(teacher.config.num_labels)])
    if student_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise CompressError(
            f"student.model: {scfg.model} has a different vocabulary from the teacher's "
            f"({len(student_tokenizer)} vs {len(tokenizer)} tokens); teacher and student must share a tokenizer"
        )
    return student, tokenizer, {"method": "pretrained", "architecture": student.config.model_type, "model": scfg.model}


def prune(model, tokenizer, sample, heads: int | None, ffn: int | None, samples: int, max_length: int,
          section: str) -> dict:
    """Prune ``model`` in place to ``heads`` attention heads, then ``ffn`` feed-forward neurons, per block (None
    keeps them all), ranked on the first ``samples`` sentences of ``sample`` (a Split) cut to ``max_length`` tokens;
    {"pruned_heads": ..., "pruned": ...} for what was pruned. ``section`` names the config section in errors."""
    if sample is None or not len(sample):
        key = "num_attention_heads" if heads is not None else "intermediate_size"
        raise CompressError(f"{section}.{key}: pruning needs training sentences, and none were given")
    texts, labels = sample.texts[:samples], sample.labels[:samples]
    info = {}
    if heads is not None:
        info["pruned_heads"] = models.prune_heads(model, heads, importance_batches(tokenizer, texts, max_length, labels),
                                                  section)
    if ffn is not None:
        info["pruned"] = models.prune_ffn(model, ffn, importance_batches(tokenizer, texts, max_length), section)
    return info


def describe_pruning(info: dict) -> str:
    """", attention heads pruned 12 -> 6 per block (...), feed-forward pruned ..." for what ``prune`` returned."""
    described = ""
    if "pruned_heads" in info:
        p = info["pruned_heads"]
        described += (f", attention heads pruned {p['heads_before']} -> {p['heads']} per block "
                      f"(importance kept: {', '.join(f'{x:.0%}' for x in p['importance_kept'])})")
    if "pruned" in info:
        p = info["pruned"]
        described += (f", feed-forward pruned {p['intermediate_size_before']} -> {p['intermediate_size']} neurons "
                      f"(importance kept per block: {', '.join(f'{x:.0%}' for x in p['importance_kept'])})")
    return described


def importance_batches(tokenizer, texts: list[str], max_length: int, labels: list[int] | None = None,
                       batch_size: int = 32):
    """(input_ids, attention_mask[, labels]) batches of ``texts``, padded per batch."""
    import torch

    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length, padding=True,
                        return_tensors="pt")
        if labels is None:
            yield enc["input_ids"], enc["attention_mask"]
        else:
            yield enc["input_ids"], enc["attention_mask"], torch.tensor(labels[start:start + batch_size])


def resized_config(teacher, scfg, spec) -> dict:
    """The teacher's config as a dict with the student's layer count, width, heads and feed-forward size
    (those ``scfg`` sets), checked: the width must divide into the heads."""
    values = teacher.config.to_dict()
    changes = {spec.count: scfg.num_layers, spec.width: scfg.hidden_size, spec.heads: scfg.num_attention_heads,
               spec.ffn: scfg.intermediate_size}
    values.update({k: v for k, v in changes.items() if v is not None})
    width, heads = values[spec.width], values[spec.heads]
    if width % heads:
        raise CompressError(f"student.hidden_size: {width} is not divisible by num_attention_heads {heads}")
    return values


def smaller(teacher, scfg):
    """The teacher's architecture with fewer/narrower layers, randomly initialised.

    When the width is unchanged the embeddings are copied from the teacher (they carry most
    of what a small student cannot learn from one task's data).
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    spec = models.layer_spec(teacher.config.model_type)
    values = resized_config(teacher, scfg, spec)
    width = values[spec.width]
    model_type = values.pop("model_type")
    for key in ("architectures", "_name_or_path", "transformers_version", "torch_dtype", "dtype"):
        values.pop(key, None)
    config = AutoConfig.for_model(model_type, **values)
    student = AutoModelForSequenceClassification.from_config(config)
    if width == getattr(teacher.config, spec.width):
        student.get_input_embeddings().load_state_dict(teacher.get_input_embeddings().state_dict())
    return student


_BERT_TO_DISTILBERT = {
    "attention.self.query": "attention.q_lin",
    "attention.self.key": "attention.k_lin",
    "attention.self.value": "attention.v_lin",
    "attention.output.dense": "attention.out_lin",
    "attention.output.LayerNorm": "sa_layer_norm",
    "intermediate.dense": "ffn.lin1",
    "output.dense": "ffn.lin2",
    "output.LayerNorm": "output_layer_norm",
}


def bert_to_distilbert(teacher, layers: list[int] | None):
    """Map a BERT teacher's blocks into a ``DistilBertForSequenceClassification`` student.

    DistilBERT has no token-type embeddings: BERT adds token_type_embeddings[0] to every
    position of a single sentence, so that row is folded into the position embeddings and the
    encoder computes exactly what BERT's does. The classification head differs (BERT: tanh
    pooler; DistilBERT: ReLU pre-classifier); its weights are copied and distillation adapts them.
    """
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    tc = teacher.config
    if tc.model_type != "bert":
        raise CompressError(f"student.architecture: distilbert needs a bert teacher, got '{tc.model_type}'")
    if getattr(tc, "position_embedding_type", "absolute") != "absolute" or tc.hidden_act not in ("gelu", "relu"):
        raise CompressError("student.architecture: distilbert needs absolute positions and gelu/relu activations")
    n = tc.num_hidden_layers
    chosen = models.every_other(n) if layers is None else list(layers)
    if any(i >= n for i in chosen):
        raise CompressError(f"student.layers: {[i for i in chosen if i >= n]} out of range; the teacher has {n} layers")
    config = DistilBertConfig(
        vocab_size=tc.vocab_size, max_position_embeddings=tc.max_position_embeddings, dim=tc.hidden_size,
        n_layers=len(chosen), n_heads=tc.num_attention_heads, hidden_dim=tc.intermediate_size,
        activation=tc.hidden_act, dropout=tc.hidden_dropout_prob, attention_dropout=tc.attention_probs_dropout_prob,
        seq_classif_dropout=tc.hidden_dropout_prob, pad_token_id=tc.pad_token_id, num_labels=tc.num_labels,
        id2label=tc.id2label, label2id=tc.label2id, problem_type=tc.problem_type,
    )
    student = DistilBertForSequenceClassification(config)
    src = teacher.bert
    state = {
        "distilbert.embeddings.word_embeddings.weight": src.embeddings.word_embeddings.weight,
        "distilbert.embeddings.position_embeddings.weight":
            src.embeddings.position_embeddings.weight + src.embeddings.token_type_embeddings.weight[0],
        "distilbert.embeddings.LayerNorm.weight": src.embeddings.LayerNorm.weight,
        "distilbert.embeddings.LayerNorm.bias": src.embeddings.LayerNorm.bias,
        "pre_classifier.weight": src.pooler.dense.weight if src.pooler is not None else student.pre_classifier.weight,
        "pre_classifier.bias": src.pooler.dense.bias if src.pooler is not None else student.pre_classifier.bias,
        "classifier.weight": teacher.classifier.weight,
        "classifier.bias": teacher.classifier.bias,
    }
    for new, old in enumerate(chosen):
        block = src.encoder.layer[old].state_dict()
        for bert_name, distil_name in _BERT_TO_DISTILBERT.items():
            for p in ("weight", "bias"):
                state[f"distilbert.transformer.layer.{new}.{distil_name}.{p}"] = block[f"{bert_name}.{p}"]
    with torch.no_grad():
        missing, unexpected = student.load_state_dict({k: v.detach().clone() for k, v in state.items()}, strict=False)
    if missing or unexpected:  # every weight must be mapped: a silent gap would be a random layer
        raise CompressError(f"student: BERT->DistilBERT mapping left {missing or unexpected} unmapped")
    return copy.deepcopy(student), chosen
