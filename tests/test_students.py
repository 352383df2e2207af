import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from compress import students
from compress.config import StudentConfig
from compress.data import Split
from compress.errors import CompressError
from compress.models import save, train_wordlevel_tokenizer


def tiny_bert(layers=4, vocab=99):
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=37, num_labels=2, hidden_act="gelu")
    return BertForSequenceClassification(cfg).eval()


def test_bert_to_distilbert_encoder_is_exact():
    teacher = tiny_bert(4)
    student, kept = students.bert_to_distilbert(teacher, [0, 1, 2, 3])
    student.eval()
    assert kept == [0, 1, 2, 3] and student.config.model_type == "distilbert"
    ids = torch.randint(5, 99, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with torch.no_grad():
        t = teacher.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        s = student.distilbert(input_ids=ids, attention_mask=mask).last_hidden_state
    # token_type_embeddings[0] folded into the positions: the encoders compute the same thing
    assert torch.allclose(t[mask.bool()], s[mask.bool()], atol=1e-5)


def test_bert_to_distilbert_every_other_layer_by_default():
    student, kept = students.bert_to_distilbert(tiny_bert(6), None)
    assert kept == [0, 2, 4] and student.config.n_layers == 3


def test_distilbert_mapping_refuses_other_teachers():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    teacher = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=99, dim=32, n_layers=2, n_heads=2, hidden_dim=37))
    with pytest.raises(CompressError, match="distilbert needs a bert teacher"):
        students.bert_to_distilbert(teacher, None)


def test_smaller_config_student():
    teacher = tiny_bert(4)
    tok = train_wordlevel_tokenizer(["good film"], max_length=16)
    cfg = StudentConfig(method="config", num_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=24)
    student, _, info = students.build(cfg, teacher, tok)
    assert info == {"method": "config", "architecture": "bert", "count": 2, "width": 16, "heads": 2, "ffn": 24}
    assert student.config.vocab_size == teacher.config.vocab_size and student.config.num_labels == 2
    same_width = students.build(StudentConfig(method="config", num_layers=1), teacher, tok)[0]
    assert torch.equal(same_width.get_input_embeddings().weight, teacher.get_input_embeddings().weight)
    with pytest.raises(CompressError, match="not divisible"):
        students.build(StudentConfig(method="config", hidden_size=30, num_attention_heads=4), teacher, tok)


def test_pretrained_student_must_share_the_vocabulary(tmp_path):
    teacher = tiny_bert(4, vocab=99)
    tok = train_wordlevel_tokenizer(["good film", "bad film"], max_length=16)
    other = train_wordlevel_tokenizer(["a wholly different vocabulary here"], max_length=16)
    save(tiny_bert(2, vocab=len(other)), other, tmp_path / "small")
    with pytest.raises(CompressError, match="different vocabulary"):
        students.build(StudentConfig(method="pretrained", model=str(tmp_path / "small")), teacher, tok)
    save(tiny_bert(2, vocab=len(tok)), tok, tmp_path / "same")
    student, _, info = students.build(StudentConfig(method="pretrained", model=str(tmp_path / "same")), teacher, tok)
    assert info["method"] == "pretrained" and student.config.num_hidden_layers == 2


def test_method_keys_are_checked():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="student.hidden_size: only used with student.method: config"):
        StudentConfig(method="layers", hidden_size=128)
    with pytest.raises(ValidationError, match="student.model: required with student.method: pretrained"):
        StudentConfig(method="pretrained")


TEXTS = ["a good film", "the plot is dull and slow", "great acting , fine music", "not worth the ticket",
         "an honest , moving story", "boring"] * 3
SAMPLE = Split("train", TEXTS, [1, 0, 1, 0, 1, 0] * 3)


def _logits(model, tok, texts):
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits


@pytest.mark.parametrize("architecture", ["same", "distilbert"])
def test_pruned_student_drops_only_the_neurons_that_do_nothing(architecture, tmp_path):
    """Neurons whose output weights are zero have importance 0: pruning exactly those leaves the logits as they were,
    while a plain truncation to the same size (the first neurons) would not."""
    teacher = tiny_bert(4)
    tok = train_wordlevel_tokenizer(TEXTS, max_length=16)
    spec = students.models.layer_spec("bert" if architecture == "same" else "distilbert")
    dead = [0, 3, 5, 8, 13, 21, 34]  # the first neurons among them: keeping neurons 0..29 would change the output
    with torch.no_grad():
        for t_layer in teacher.bert.encoder.layer:
            t_layer.output.dense.weight[:, dead] = 0
    unpruned, _, _ = students.build(StudentConfig(layers=[0, 2], architecture=architecture), teacher, tok)
    cfg = StudentConfig(layers=[0, 2], architecture=architecture, intermediate_size=37 - len(dead), prune_samples=8)
    pruned, _, info = students.build(cfg, teacher, tok, SAMPLE, max_length=16)
    assert getattr(pruned.config, spec.ffn) == 30 and info["pruned"]["intermediate_size_before"] == 37
    assert info["pruned"]["importance_kept"] == [1.0, 1.0]
    for block in students.models._getattr_path(pruned, spec.modules):
        assert students.models._getattr_path(block, spec.ffn_in).weight.shape[0] == 30
        assert students.models._getattr_path(block, spec.ffn_out).weight.shape[1] == 30
    torch.testing.assert_close(_logits(pruned, tok, TEXTS), _logits(unpruned, tok, TEXTS), atol=1e-5, rtol=0)
    # saved and loaded again it has the same shapes and output
    save(pruned, tok, tmp_path / "s")
    from compress.models import load_saved

    again, _ = load_saved(tmp_path / "s")
    torch.testing.assert_close(_logits(again, tok, TEXTS), _logits(unpruned, tok, TEXTS), atol=1e-5, rtol=0)


def test_pruning_keeps_the_most_important_neurons_and_changes_the_output():
    teacher = tiny_bert(2)
    tok = train_wordlevel_tokenizer(TEXTS, max_length=16)
    with torch.no_grad():  # neuron 4 reads back with weights 100x larger than the others: it must be kept
        teacher.bert.encoder.layer[0].output.dense.weight[:, 4] *= 100
    pruned, _, info = students.build(StudentConfig(layers=[0, 1], intermediate_size=4), teacher, tok, SAMPLE, 16)
    kept_column = teacher.bert.encoder.layer[0].output.dense.weight[:, 4]
    assert any(torch.equal(col, kept_column) for col in pruned.bert.encoder.layer[0].output.dense.weight.T)
    assert 0 < info["pruned"]["importance_kept"][1] < 1 and info["pruned"]["importance_kept"][0] > 0.5
    full = students.build(StudentConfig(layers=[0, 1]), teacher, tok)[0]
    assert not torch.allclose(_logits(pruned, tok, TEXTS), _logits(full, tok, TEXTS))


def test_pruning_refuses_a_wider_feed_forward_and_needs_text():
    teacher = tiny_bert(2)
    tok = train_wordlevel_tokenizer(TEXTS, max_length=16)
    with pytest.raises(CompressError, match="student.intermediate_size: 64 is wider than the teacher's feed-forward"):
        students.build(StudentConfig(layers=[0], intermediate_size=64), teacher, tok, SAMPLE)
    with pytest.raises(CompressError, match="needs training sentences"):
        students.build(StudentConfig(layers=[0], intermediate_size=8), teacher, tok)
    with pytest.raises(ValueError, match="student.intermediate_size: only used with student.method: config or layers"):
        StudentConfig(method="pretrained", model="x", intermediate_size=8)


@pytest.mark.parametrize("architecture", ["same", "distilbert"])
def test_pruned_heads_are_the_ones_that_do_nothing_and_the_student_loads_back(architecture, tmp_path):
    """A head whose output projection is zero moves no loss: head pruning removes exactly those (identical logits),
    records them in the config, and the saved student loads back with the smaller attention."""
    from compress.models import load_saved

    teacher = tiny_bert(4)  # 2 heads of 16
    tok = train_wordlevel_tokenizer(TEXTS, max_length=16)
    with torch.no_grad():
        teacher.bert.encoder.layer[0].attention.output.dense.weight[:, 16:] = 0  # head 1 of layer 0
        teacher.bert.encoder.layer[2].attention.output.dense.weight[:, :16] = 0  # head 0 of layer 2
    unpruned = students.build(StudentConfig(layers=[0, 2], architecture=architecture), teacher, tok)[0]
    cfg = StudentConfig(layers=[0, 2], architecture=architecture, num_attention_heads=1, prune_samples=12)
    pruned, _, info = students.build(cfg, teacher, tok, SAMPLE, max_length=16)
    assert info["pruned_heads"]["pruned"] == {"0": [1], "1": [0]} and info["pruned_heads"]["importance_kept"] == [1.0, 1.0]
    torch.testing.assert_close(_logits(pruned, tok, TEXTS), _logits(unpruned, tok, TEXTS), atol=1e-5, rtol=0)
    save(pruned, tok, tmp_path / "s")
    again, _ = load_saved(tmp_path / "s")
    assert sum(p.numel() for p in again.parameters()) == sum(p.numel() for p in pruned.parameters())
    torch.testing.assert_close(_logits(again, tok, TEXTS), _logits(unpruned, tok, TEXTS), atol=1e-5, rtol=0)
    with pytest.raises(CompressError, match="student.num_attention_heads: 3 is more than the teacher's 2 heads"):
        students.build(StudentConfig(layers=[0], num_attention_heads=3), teacher, tok, SAMPLE)
    # refine prunes the distilled student: errors name refine's keys, and heads are pruned in one place only
    with pytest.raises(CompressError, match="refine.num_attention_heads: the distilled student's heads were pruned"):
        students.prune(again, tok, SAMPLE, 1, None, 12, 16, "refine")
    with pytest.raises(CompressError, match="refine.intermediate_size: 999 is wider than the distilled student's"):
        students.prune(again, tok, SAMPLE, None, 999, 12, 16, "refine")
