import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
)

from compress import models
from compress.errors import CompressError


def tiny_bert(layers=4):
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=37, num_labels=2)
    return BertForSequenceClassification(cfg).eval()


def test_student_keeps_every_other_layer_with_copied_weights():
    teacher = tiny_bert(6)
    student, kept = models.student_from_layers(teacher, None)
    assert kept == [0, 2, 4]
    assert student.config.num_hidden_layers == 3 and len(student.bert.encoder.layer) == 3
    for new, old in enumerate(kept):
        for (name, p), (_, q) in zip(student.bert.encoder.layer[new].named_parameters(),
                                     teacher.bert.encoder.layer[old].named_parameters()):
            assert torch.equal(p, q), name
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight)
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    # the copy is independent: training the student leaves the teacher as it was
    student.bert.embeddings.word_embeddings.weight.data.add_(1.0)
    assert not torch.equal(student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight)
    assert len(teacher.bert.encoder.layer) == 6


def test_student_with_all_layers_matches_teacher_outputs():
    teacher = tiny_bert(4)
    student, _ = models.student_from_layers(teacher, [0, 1, 2, 3])
    ids = torch.randint(5, 99, (3, 11))
    with torch.no_grad():
        assert torch.allclose(student(input_ids=ids).logits, teacher(input_ids=ids).logits)


def test_student_round_trips_through_save(tmp_path):
    from compress.models import train_wordlevel_tokenizer

    teacher = tiny_bert(4)
    tok = train_wordlevel_tokenizer(["a good film", "a bad film"], max_length=16)
    student, _ = models.student_from_layers(teacher, [1, 3])
    models.save(student, tok, tmp_path / "m")
    loaded, tok2 = models.load_saved(tmp_path / "m")
    assert loaded.config.num_hidden_layers == 2
    ids = torch.randint(5, 99, (2, 7))
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids).logits, student(input_ids=ids).logits)
    assert tok2("a good film")["input_ids"][0] == tok2.cls_token_id


def test_distilbert_teacher_is_registered():
    cfg = DistilBertConfig(vocab_size=99, dim=32, n_layers=4, n_heads=2, hidden_dim=37)
    teacher = DistilBertForSequenceClassification(cfg)
    student, kept = models.student_from_layers(teacher, [0, 3])
    assert student.config.n_layers == 2 and len(student.distilbert.transformer.layer) == 2


def test_layer_out_of_range_and_unknown_architecture():
    with pytest.raises(CompressError, match=r"student.layers: \[7\] out of range; the teacher has 4 layers"):
        models.student_from_layers(tiny_bert(4), [0, 7])

    class Fake:
        config = type("C", (), {"model_type": "mamba"})()

    with pytest.raises(CompressError, match="supported: bert, distilbert, electra, roberta, xlm-roberta"):
        models.student_from_layers(Fake(), None)


def test_every_registered_architecture_is_tested():
    assert set(models.LAYERS) == {"bert", "roberta", "xlm-roberta", "electra", "distilbert"}


def test_pickle_weights_are_refused_unless_allowed(tmp_path):
    model = tiny_bert(2)
    model.save_pretrained(tmp_path, safe_serialization=False)
    assert (tmp_path / "pytorch_model.bin").exists()
    with pytest.raises(CompressError, match="only pickle weights"):
        models.load_pretrained(str(tmp_path), 2)


def test_missing_weights_are_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CompressError, match="no model weights in"):
        models.load_pretrained(str(tmp_path), 2)


def test_local_folder_and_package_sources_load(tmp_path, monkeypatch):
    import sys

    from compress.models import train_wordlevel_tokenizer

    tiny_bert(2).save_pretrained(tmp_path / "m", safe_serialization=True)
    train_wordlevel_tokenizer(["good film"], max_length=16).save_pretrained(tmp_path / "m")
    model, tok = models.load_pretrained(str(tmp_path / "m"), 2)
    assert model.config.num_hidden_layers == 2 and tok.pad_token == "[PAD]"
    # package:<name>: the model folder inside the installed package, found without importing it
    package = tmp_path / "site" / "fake_weights_pkg"
    (package / "__init__.py").parent.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('importing this package is not allowed')\n")
    tiny_bert(2).save_pretrained(package / "model", safe_serialization=True)
    train_wordlevel_tokenizer(["good film"], max_length=16).save_pretrained(package / "model")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    model, _ = models.load_pretrained("package:fake_weights_pkg", 2)
    assert model.config.num_hidden_layers == 2 and "fake_weights_pkg" not in sys.modules


def test_hub_id_without_network_is_one_sentence(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CompressError, match=r"teacher.model: could not load 'no-such-org/no-such-model'"):
        models.load_pretrained("no-such-org/no-such-model", 2)
