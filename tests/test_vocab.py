import json
import random

import pytest
import torch
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from compress import models
from compress.errors import CompressError
from compress.vocab import trim_vocabulary

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ("film movie story actor acting plot scene script music camera director screen cinema drama comedy "
         "thriller horror romance hero villain ending opening sequel remake trailer audience critic review "
         "brilliant boring charming dreadful gripping clumsy moving tedious stunning awful lovely dull "
         "wonderful terrible superb bland fresh stale clever silly").split()
# task text with whole words, sub-word pieces (filmmakers, brilliantly) and [UNK] (",", "☃")
TASK = ["the film was brilliant", "a boring plot , dreadful acting", "brilliant!",
        "the filmmakers rewrote a brilliantly gripping screenplay ☃"]


def corpus(n=400, seed=0):
    rng = random.Random(seed)
    glue = ["the", "a", "was", "is", "and", "but", "very", "so", "it", "this"]
    return [" ".join(rng.choice(WORDS + glue) for _ in range(rng.randint(3, 9))) for _ in range(n)]


def wordpiece_tokenizer(vocab_size=220, max_length=32):
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors, trainers
    from tokenizers import models as tm

    tok = Tokenizer(tm.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(corpus(), trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[(t, tok.token_to_id(t)) for t in ("[CLS]", "[SEP]")],
    )
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=max_length)


def wordlevel_tokenizer():
    return models.train_wordlevel_tokenizer(corpus(), max_length=32)


def bert(vocab, cls=BertForSequenceClassification, pad=0):
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=37, num_labels=2, pad_token_id=pad)
    return cls(cfg).eval()


def distilbert(vocab):
    torch.manual_seed(0)
    cfg = DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=2, hidden_dim=37, num_labels=2)
    return DistilBertForSequenceClassification(cfg).eval()


def roberta(vocab):
    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, num_labels=2, pad_token_id=0, max_position_embeddings=64)
    return RobertaForSequenceClassification(cfg).eval()


def logits(model, tokenizer, texts, **kw):
    batch = tokenizer(texts, padding=True, return_tensors="pt", **kw)
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


CASES = {
    "wordpiece-bert": (wordpiece_tokenizer, bert),
    "wordlevel-distilbert": (wordlevel_tokenizer, distilbert),
    "wordpiece-distilbert": (wordpiece_tokenizer, distilbert),
    "wordlevel-roberta": (wordlevel_tokenizer, roberta),
}


@pytest.mark.parametrize("case", CASES)
def test_trimmed_model_gives_identical_logits_on_task_text(case):
    make_tok, make_model = CASES[case]
    tok = make_tok()
    model = make_model(len(tok))
    small, small_tok, info = trim_vocabulary(model, tok, TASK)
    assert info["vocab_after"] < info["vocab_before"] == len(tok)
    assert small.get_input_embeddings().num_embeddings == small.config.vocab_size == len(small_tok) == info["vocab_after"]
    old_ids, new_ids = tok(TASK)["input_ids"], small_tok(TASK)["input_ids"]
    assert old_ids != new_ids  # re-indexed, so the equality below is not trivial
    assert [len(i) for i in old_ids] == [len(i) for i in new_ids]
    assert [tok.convert_ids_to_tokens(i) for i in old_ids] == [small_tok.convert_ids_to_tokens(i) for i in new_ids]
    before, after = logits(model, tok, TASK), logits(small, small_tok, TASK)
    assert before.shape == (len(TASK), 2)
    assert torch.allclose(before, after, atol=1e-6, rtol=0)
    # the input model is left as it was
    assert model.get_input_embeddings().num_embeddings == info["vocab_before"]


def test_wordpiece_task_text_uses_subword_pieces_and_unk():
    tok = wordpiece_tokenizer()
    tokens = tok.tokenize(" ".join(TASK))
    assert any(t.startswith("##") for t in tokens) and "[UNK]" in tokens  # the cases the argument is about


def test_sizes_are_reported():
    tok = wordpiece_tokenizer()
    model = bert(len(tok))
    _, small_tok, info = trim_vocabulary(model, tok, TASK)
    removed = info["vocab_before"] - info["vocab_after"]
    assert removed > 0
    assert info["embedding_params_saved"] == removed * 32
    assert info["bytes_saved_fp32"] == removed * 32 * 4
    kept = sorted({i for ids in tok(TASK)["input_ids"] for i in ids} | set(tok.all_special_ids))
    assert info["kept_ids"] == kept and len(kept) <= 50
    assert set(info) == {"vocab_before", "vocab_after", "embedding_params_saved", "bytes_saved_fp32", "kept_ids"}
    assert json.loads(json.dumps(info)) == info
    # many kept ids: a count, not the list
    _, _, info = trim_vocabulary(model, tok, corpus(60, seed=1))
    assert "kept_ids" not in info and info["kept_ids_count"] == info["vocab_after"] > 50


def test_special_tokens_are_kept_and_padding_works():
    tok = wordlevel_tokenizer()
    model = distilbert(len(tok))
    small, small_tok, _ = trim_vocabulary(model, tok, ["dull film"])
    assert set(small_tok.get_vocab()) == set(SPECIALS) | {"film", "dull"}
    for name in ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token"):
        assert getattr(small_tok, name) == getattr(tok, name)
        assert small_tok.convert_ids_to_tokens(getattr(small_tok, name + "_id")) == getattr(tok, name)
    assert small.config.pad_token_id == small_tok.pad_token_id == small.get_input_embeddings().padding_idx
    batch = small_tok(["dull film", "film"], padding=True)
    assert batch["input_ids"][1] == [small_tok.cls_token_id, small_tok.convert_tokens_to_ids("film"),
                                     small_tok.sep_token_id, small_tok.pad_token_id]
    assert small_tok.model_max_length == tok.model_max_length


def late_specials_tokenizer(processor="template"):
    """[CLS] [SEP] [PAD] added after training: they have the last ids, so trimming moves them."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors, trainers
    from tokenizers import models as tm

    backend = Tokenizer(tm.WordLevel(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.train_from_iterator(corpus(), trainers.WordLevelTrainer(special_tokens=["[UNK]", "[MASK]"]))
    backend.add_special_tokens(["[CLS]", "[SEP]", "[PAD]"])
    cls, sep = ("[CLS]", backend.token_to_id("[CLS]")), ("[SEP]", backend.token_to_id("[SEP]"))
    template = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[cls, sep])
    backend.post_processor = {"bert": processors.BertProcessing(sep, cls), "template": template,
                              "sequence": processors.Sequence([template])}[processor]
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=32)


@pytest.mark.parametrize("processor", ["bert", "template", "sequence"])
def test_special_ids_that_move_are_reindexed_everywhere(processor):
    tok = late_specials_tokenizer(processor)
    old_pad = tok.pad_token_id
    assert old_pad == len(tok) - 1
    model = bert(len(tok), pad=old_pad)
    small, small_tok, info = trim_vocabulary(model, tok, TASK)
    assert small_tok.pad_token_id == small.config.pad_token_id == info["vocab_after"] - 1 != old_pad
    assert small.get_input_embeddings().padding_idx == small_tok.pad_token_id
    assert small_tok.cls_token_id == info["vocab_after"] - 3 != tok.cls_token_id
    assert small_tok.convert_ids_to_tokens(small_tok("film")["input_ids"]) == ["[CLS]", "film", "[SEP]"]
    assert torch.allclose(logits(model, tok, TASK), logits(small, small_tok, TASK), atol=1e-6, rtol=0)


@pytest.mark.parametrize("make_tok", [wordpiece_tokenizer, wordlevel_tokenizer])
def test_unseen_word_maps_to_unk(make_tok):
    tok = make_tok()
    _, small_tok, _ = trim_vocabulary(bert(len(tok)), tok, ["the film was brilliant"])
    assert "villain" in tok.get_vocab()  # known before, trimmed away
    ids = small_tok("brilliant villain")["input_ids"]
    assert ids == [small_tok.cls_token_id, small_tok.convert_tokens_to_ids("brilliant"), small_tok.unk_token_id,
                   small_tok.sep_token_id]


def test_added_tokens_are_kept_and_reindexed():
    tok = wordpiece_tokenizer()
    tok.add_tokens(["<movie-title>"])
    tok.add_special_tokens({"additional_special_tokens": ["[EMO]"]})
    model = bert(len(tok))
    small, small_tok, _ = trim_vocabulary(model, tok, ["a <movie-title> was brilliant"])
    assert small_tok.additional_special_tokens == ["[EMO]"]
    assert small_tok.convert_ids_to_tokens(small_tok("[EMO] <movie-title>")["input_ids"]) == \
        ["[CLS]", "[EMO]", "<movie-title>", "[SEP]"]
    texts = ["a <movie-title> was brilliant", "[EMO] brilliant"]
    assert torch.allclose(logits(model, tok, texts), logits(small, small_tok, texts), atol=1e-6, rtol=0)


def test_truncation_keeps_the_whole_word_it_cuts():
    tok = wordpiece_tokenizer()
    text = "the filmmakers rewrote a brilliantly gripping screenplay"
    pieces = tok.tokenize(text)
    cut = next(i for i in range(1, len(pieces)) if pieces[i].startswith("##"))  # cut inside a word
    model = bert(len(tok))
    max_length = cut + 2  # [CLS] + cut pieces + [SEP]
    small, small_tok, info = trim_vocabulary(model, tok, [text], max_length=max_length)
    kept = set(small_tok.get_vocab())
    assert pieces[cut] in kept and pieces[-1] not in kept  # rest of the cut word kept, later words not
    kw = {"truncation": True, "max_length": max_length}
    assert torch.allclose(logits(model, tok, [text], **kw), logits(small, small_tok, [text], **kw), atol=1e-6, rtol=0)


def test_tied_output_embeddings_and_bias_are_trimmed():
    tok = wordpiece_tokenizer()
    model = bert(len(tok), cls=BertForMaskedLM)
    with torch.no_grad():
        model.cls.predictions.bias.normal_()
    small, small_tok, info = trim_vocabulary(model, tok, TASK)
    out = small.get_output_embeddings()
    assert out.weight is small.get_input_embeddings().weight
    assert out.bias.shape == (info["vocab_after"],) and small.cls.predictions.bias is out.bias
    kept = [tok.convert_tokens_to_ids(t) for t in small_tok.convert_ids_to_tokens(list(range(len(small_tok))))]
    before, after = logits(model, tok, TASK), logits(small, small_tok, TASK)
    assert torch.allclose(before[..., kept], after, atol=1e-6, rtol=0)
    assert info["embedding_params_saved"] == (info["vocab_before"] - info["vocab_after"]) * 33  # rows + bias


@pytest.mark.parametrize("make_tok, make_model", [(wordpiece_tokenizer, bert), (wordlevel_tokenizer, distilbert)])
def test_round_trip_through_save_and_load(tmp_path, make_tok, make_model):
    tok = make_tok()
    model = make_model(len(tok))
    small, small_tok, _ = trim_vocabulary(model, tok, TASK)
    models.save(small, small_tok, tmp_path / "m")
    loaded, loaded_tok = models.load_saved(tmp_path / "m")
    assert loaded_tok(TASK)["input_ids"] == small_tok(TASK)["input_ids"]
    assert loaded_tok.pad_token_id == loaded.config.pad_token_id == small_tok.pad_token_id
    assert torch.equal(logits(loaded, loaded_tok, TASK), logits(small, small_tok, TASK))
    assert torch.allclose(logits(loaded, loaded_tok, TASK), logits(model, tok, TASK), atol=1e-6, rtol=0)


def test_bpe_tokenizer_is_refused():
    from tokenizers import Tokenizer, pre_tokenizers, trainers
    from tokenizers import models as tm

    backend = Tokenizer(tm.BPE(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(corpus(50), trainers.BpeTrainer(vocab_size=120, special_tokens=SPECIALS))
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]")
    with pytest.raises(CompressError, match="tokenizer model BPE is not supported; supported: WordLevel, WordPiece"):
        trim_vocabulary(bert(len(tok)), tok, TASK)


def test_tokenizer_larger_than_the_model_is_refused():
    tok = wordlevel_tokenizer()
    with pytest.raises(CompressError, match="embedding rows"):
        trim_vocabulary(bert(20), tok, ["villain"])


def test_pad_id_that_numbers_positions_is_not_moved():
    tok = late_specials_tokenizer()
    torch.manual_seed(0)
    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=37, pad_token_id=tok.pad_token_id, max_position_embeddings=128)
    model = RobertaForSequenceClassification(cfg).eval()
    with pytest.raises(CompressError, match=rf"RobertaEmbeddings uses the pad id {tok.pad_token_id} for positions"):
        trim_vocabulary(model, tok, TASK)
