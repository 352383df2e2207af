"""`compress generate`: a causal-LM bundle's reply streamed with tokenizers, jinja2, numpy and onnxruntime alone.

The chat templates are rendered against transformers' own apply_chat_template (transformers is imported here, in
the test process, never in the generating one); the bundle is one tiny Llama-shaped tiny-lm run shared by the
module, its greedy replies checked against golden.json and against onnxlm.Decoder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from compress.io import file_index
from compress.layout import DECODER_TOKENIZER_FILES
from compress.tasks.causal_lm.generate import Chat, chat_template, pick, render_chat, special_tokens

from .conftest import FAST, ROOT, invoke, read_json

CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
          "You are a helpful assistant<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
          "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>"
          "assistant\n' }}{% endif %}")
LLAMA2 = ("{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
          "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
          "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] | trim + ' [/INST]' }}{% else %}"
          "{{ ' ' + message['content'] | trim + ' ' + eos_token }}{% endif %}{% endfor %}")
# whitespace control (trim_blocks, lstrip_blocks), loop controls, tojson, {% generation %} and an unset variable
BLOCKS = """{% for message in messages %}
    {% if message['role'] == 'system' %}{% continue %}{% endif %}
    <{{ message['role'] }}>{{ message | tojson }}{% generation %}{{ message['content'] }}{% endgeneration %}
{% endfor %}
{% if tools %}{{ tools }}{% endif %}{% if add_generation_prompt %}<assistant>{{ eos_token }}{% endif %}"""
PROMPTS = ["Hello there", "  naïve café — 日本語 \"quoted\" <b>&amp;</b>  "]


def tokenizer(template: str | None):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>", "<|im_start|>", "<|im_end|>"],
                                  show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(["Hello there, a user and an assistant talk. " * 20], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="</s>",
                                   chat_template=template)


@pytest.mark.parametrize("template", [CHATML, LLAMA2, BLOCKS])
def test_chat_template_renders_as_transformers_does(template, tmp_path):
    tok = tokenizer(template)
    tok.save_pretrained(tmp_path)
    saved = {p.name for p in tmp_path.iterdir()}
    assert saved <= set(DECODER_TOKENIZER_FILES), saved - set(DECODER_TOKENIZER_FILES)  # the ship stage copies them all
    assert chat_template(tmp_path) == template
    for prompt in PROMPTS:
        messages = [{"role": "user", "content": prompt}]
        expected = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert render_chat(template, prompt, special_tokens(tmp_path)) == expected
    # a template kept in tokenizer_config.json (older transformers, most hub repos) is read too
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)
    config = read_json(tmp_path / "tokenizer_config.json")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": template}))
    assert chat_template(tmp_path) == template


def test_a_template_error_is_one_line():
    from compress.errors import CompressError

    with pytest.raises(CompressError, match="Conversation roles must alternate.*--no-chat-template"):
        render_chat(LLAMA2.replace("== 'user') !=", "== 'user') =="), "hi", {"bos_token": "<s>", "eos_token": "</s>"})


def test_pick_greedy_top_k_and_seeded_sampling():
    import numpy as np

    logits = np.asarray([0.0, 3.0, 2.9, -1.0, 1.0], dtype=np.float32)
    assert pick(logits, 0.0, 0, np.random.default_rng(0)) == 1
    draws = [pick(logits, 1.0, 2, np.random.default_rng(s)) for s in range(200)]
    assert set(draws) == {1, 2}  # only the two likeliest, both drawn
    again = [pick(logits, 1.0, 2, np.random.default_rng(s)) for s in range(200)]
    assert draws == again
    assert len({pick(logits, 5.0, 0, np.random.default_rng(s)) for s in range(200)}) == 5


# ----------------------------------------------------------------------------- on a bundle

LLAMA = ("teacher.architecture={model_type: llama, vocab_size: 300, hidden_size: 32, intermediate_size: 64, "
         "num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128}")


@pytest.fixture(scope="module")
def lm_bundle(tmp_path_factory):
    """pipelines/tiny-lm.yaml with a Llama-shaped teacher, cut short (fp32 ONNX student shipped, no baselines,
    no quantization); the bundle folder, read-only."""
    base = tmp_path_factory.mktemp("lm")
    result = invoke("run", ROOT / "pipelines" / "tiny-lm.yaml", "--runs-dir", base / "runs", f"ship.dir={base / 'exports'}",
                    LLAMA, *FAST, "baselines.enabled=false", "teacher.train.epochs=1", "data.generated_size=400",
                    "bench.targets=[cpu]", "quantize.variants=[]", "ship.variant=student-onnx")
    assert result.exit_code == 0, result.output + (result.stderr or "")
    return base / "exports" / "tiny-lm"


BLOCK = """import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'transformers'):
            raise ImportError(f'{name} is blocked in this process')
sys.meta_path.insert(0, Blocker())
"""


def blocked(code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh Python where torch and transformers cannot be imported."""
    return subprocess.run([sys.executable, "-c", BLOCK + code], check=False, capture_output=True, text=True, cwd=ROOT, timeout=300)


def generate(*args) -> subprocess.CompletedProcess:
    """``compress generate ARGS`` in a fresh process without torch or transformers."""
    return blocked(f"sys.argv = ['compress', 'generate', *{[str(a) for a in args]!r}]\nfrom compress.cli import main\nmain()")


@pytest.mark.slow  # a tiny-lm run for its bundle
def test_greedy_generation_replays_the_golden_tokens(lm_bundle):
    from tokenizers import Tokenizer

    golden = read_json(lm_bundle / "golden.json")
    tok = Tokenizer.from_file(str(lm_bundle / "tokenizer.json"))
    chat = Chat(lm_bundle)
    assert chat.template is None  # the tiny-lm tokenizer has no chat template
    assert "compress generate <this folder>" in (lm_bundle / "README.md").read_text()  # the model card says how
    for s in golden["samples"]:
        ids = chat.prompt_ids(s["text"], chat=False)
        assert ids == s["input_ids"]
        assert list(chat.tokens(ids, golden["new_tokens"])) == s["greedy_tokens"]
    s = golden["samples"][0]
    out = invoke("generate", lm_bundle, s["text"], "--no-chat-template", "--max-new-tokens", golden["new_tokens"])
    assert out.exit_code == 0, out.output + (out.stderr or "")
    assert out.stdout == tok.decode(s["greedy_tokens"]) + "\n"
    sampled = [invoke("generate", lm_bundle, s["text"], "--temperature", "1.5", "--top-k", "20", "--seed", seed).stdout
               for seed in ("1", "1", "2")]
    assert sampled[0] == sampled[1] and sampled[0] != out.stdout


@pytest.mark.slow  # a tiny-lm run for its bundle
def test_generate_with_a_chat_template_without_torch_or_transformers(lm_bundle, tmp_path):
    """A chat template in the bundle's tokenizer_config.json (manifest re-hashed): the prompt ids equal
    transformers' apply_chat_template; the reply, streamed by a process where torch and transformers cannot be
    imported, equals onnxlm.Decoder's greedy tokens decoded."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from compress.tasks.causal_lm.onnxlm import Decoder

    bundle = tmp_path / "bundle"
    shutil.copytree(lm_bundle, bundle)
    config = read_json(bundle / "tokenizer_config.json")
    (bundle / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": CHATML}))
    manifest = read_json(bundle / "manifest.json")
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "files": {k: v for k, v in file_index(bundle).items() if k != "manifest.json"}}))
    prompt = "the king said"
    expected_ids = AutoTokenizer.from_pretrained(bundle).apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=True, add_generation_prompt=True)
    assert Chat(bundle).prompt_ids(prompt) == list(expected_ids)
    golden = read_json(bundle / "golden.json")
    tokens = Decoder(bundle / "model.onnx").greedy(list(expected_ids), 24, golden["eos_token_id"])
    out = generate(bundle, prompt, "--max-new-tokens", "24")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout == Tokenizer.from_file(str(bundle / "tokenizer.json")).decode(tokens) + "\n"
    probe = blocked("import transformers")  # the blocker is real
    assert probe.returncode == 1 and "transformers is blocked" in probe.stderr
    # a changed file: refused before loading, one line, exit 2
    (bundle / "tokenizer_config.json").write_text(json.dumps(config))
    changed = generate(bundle, prompt)
    assert changed.returncode == 2 and changed.stderr.startswith("error: tokenizer_config.json: ")
    assert len(changed.stderr.splitlines()) == 1 and not changed.stdout


@pytest.mark.slow  # a tiny-lm run for its bundle
def test_bad_bundles_are_refused_in_one_line(lm_bundle, tmp_path):
    missing = invoke("generate", tmp_path / "nope", "hi")
    assert missing.exit_code == 2 and "not a folder" in missing.stderr and "Traceback" not in missing.output
    bundle = tmp_path / "bundle"
    shutil.copytree(lm_bundle, bundle)
    (bundle / "manifest.json").unlink()
    unlisted = invoke("generate", bundle, "hi")
    assert unlisted.exit_code == 2 and "manifest.json: not found" in unlisted.stderr
    shutil.copy(lm_bundle / "manifest.json", bundle / "manifest.json")
    manifest = read_json(bundle / "manifest.json")
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "task": "sequence-classification"}))
    other = invoke("generate", bundle, "hi")
    assert other.exit_code == 2 and "a sequence-classification bundle" in other.stderr
    assert len(other.stderr.splitlines()) == 1
    greedy_top_k = invoke("generate", lm_bundle, "hi", "--top-k", "5")
    assert greedy_top_k.exit_code == 2 and "--top-k" in greedy_top_k.stderr
