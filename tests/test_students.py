import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from compress import students
from compress.config import StudentConfig
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
