"""``compress generate BUNDLE PROMPT``: a causal-LM bundle tried out, its reply streamed token by token.

The task's ``generate`` hook: compress/verify.py checks the bundle against ``manifest.json`` first (sha256 and
size of every file), then it is loaded with the libraries a device has: the ``tokenizers`` library for ``tokenizer.json``, onnxruntime and numpy
for ``model.onnx`` (onnxlm.Decoder, through its KV cache), and jinja2 for the chat template, rendered as
transformers' ``apply_chat_template`` renders it (the same jinja environment, one user message, the generation
prompt, the special tokens as variables). Never torch or transformers, nor a compress module that imports them.

Greedy by default; ``temperature`` > 0 samples (optionally from the ``top_k`` likeliest tokens) with a seeded
numpy generator. Generation stops at an end-of-sequence id: the one ``golden.json`` was computed with (the
tokenizer's) and the model's own in config.json and generation_config.json, which can differ (a GGUF tokenizer
read by transformers may name another eos than its model).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np

from compress.errors import CompressError
from compress.layout import CHAT_TEMPLATE_FILE, GOLDEN_FILE, ONNX_FILE
from compress.tasks.causal_lm.onnxlm import Decoder  # numpy and onnxruntime only

# the special tokens transformers passes to a chat template (PreTrainedTokenizerBase.special_tokens_map)
SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
                  "additional_special_tokens")


def _json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompressError(f"{path}: not valid JSON ({exc})") from None
    return data if isinstance(data, dict) else {}


def chat_template(bundle: Path) -> str | None:
    """The bundle's chat template: chat_template.jinja (where transformers >= 4.57 saves it), else the
    ``chat_template`` of tokenizer_config.json (a string, or a list of named templates: the "default" one)."""
    if (bundle / CHAT_TEMPLATE_FILE).is_file():
        return (bundle / CHAT_TEMPLATE_FILE).read_text(encoding="utf-8")
    found = _json(bundle / "tokenizer_config.json").get("chat_template")
    if isinstance(found, list):
        found = next((t.get("template") for t in found if isinstance(t, dict) and t.get("name") == "default"), None)
    return found if isinstance(found, str) and found.strip() else None


def special_tokens(bundle: Path) -> dict:
    """{bos_token: "<s>", ...}: the variables transformers gives a chat template, from special_tokens_map.json
    (else tokenizer_config.json); a token saved as an AddedToken dict gives its content."""
    source = _json(bundle / "special_tokens_map.json") or _json(bundle / "tokenizer_config.json")

    def text(value):
        return value.get("content") if isinstance(value, dict) else value

    out = {}
    for key in SPECIAL_TOKENS:
        value = source.get(key)
        if key == "additional_special_tokens" and isinstance(value, list) and value:
            out[key] = [text(v) for v in value]
        elif isinstance(text(value), str):
            out[key] = text(value)
    return out


def render_chat(template: str, prompt: str, special: dict) -> str:
    """One user message through ``template`` with the generation prompt, in the jinja environment of
    transformers' apply_chat_template (sandboxed, trim_blocks and lstrip_blocks, loop controls, its tojson,
    raise_exception and strftime_now; ``{% generation %}`` blocks rendered as they are)."""
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(Extension):  # transformers' AssistantTracker, less the tracking
        tags = frozenset({"generation"})

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template).render(messages=[{"role": "user", "content": prompt}], tools=None,
                                                documents=None, add_generation_prompt=True, **special)
    except jinja2.TemplateError as exc:
        raise CompressError(f"chat template: {type(exc).__name__}: {exc}; run with --no-chat-template to send the "
                            "prompt as it is") from None


def _ids(value) -> set[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return {value}
    return {v for v in value if isinstance(v, int)} if isinstance(value, list) else set()


def stream(bundle: Path, prompt: str, max_new_tokens: int = 128, temperature: float = 0.0, top_k: int = 0,
           seed: int = 0, chat: bool = True) -> Iterator[str]:
    """The ``generate`` hook (compress.verify.generate calls it once the files are checked): the bundle loaded and
    the prompt tokenized now (a bad one raises here), the reply's text pieces as they are generated."""
    opened = Chat(bundle)
    return opened.pieces(opened.prompt_ids(prompt, chat), max_new_tokens, temperature, top_k, seed)


class Chat:
    """A causal-LM bundle opened for generation (its files are not checked here: compress.verify.generate does)."""

    def __init__(self, bundle: Path):
        from tokenizers import Tokenizer

        bundle = Path(bundle)
        try:
            self.tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises a bare Exception for unreadable files
            raise CompressError(f"{bundle / 'tokenizer.json'}: the tokenizers library cannot load it ({exc})") from None
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        try:
            self.decoder = Decoder(bundle / ONNX_FILE)
        except Exception as exc:  # onnxruntime's load errors have no common base class; ValueError: no cache inputs
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CompressError(f"{bundle / ONNX_FILE}: cannot be loaded as a decoder with a KV cache "
                                f"({first[:200]})") from None
        config = _json(bundle / "config.json")
        self.eos = (_ids(_json(bundle / GOLDEN_FILE).get("eos_token_id")) | _ids(config.get("eos_token_id"))
                    | _ids(_json(bundle / "generation_config.json").get("eos_token_id")))
        self.max_length = config.get("max_position_embeddings") or config.get("n_positions")
        self.template = chat_template(bundle)
        self.special = special_tokens(bundle)

    def prompt_ids(self, prompt: str, chat: bool = True) -> list[int]:
        """The prompt's ids: through the chat template when the bundle has one and ``chat``; tokenized without
        special tokens, as apply_chat_template does (the template writes them) and golden.json was."""
        text = render_chat(self.template, prompt, self.special) if chat and self.template else prompt
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        if not ids:
            raise CompressError("prompt: empty after tokenization; give some text")
        if self.max_length and len(ids) >= self.max_length:
            raise CompressError(f"prompt: {len(ids)} tokens; this model reads at most {self.max_length}")
        return ids

    def tokens(self, prompt: list[int], max_new_tokens: int, temperature: float = 0.0, top_k: int = 0,
               seed: int = 0) -> Iterator[int]:
        """Each new token as it is chosen, through the KV cache; stops before an eos id, after
        ``max_new_tokens`` or at the model's longest sequence."""
        rng = np.random.default_rng(seed)
        limit = max_new_tokens if not self.max_length else min(max_new_tokens, self.max_length - len(prompt))
        ids = np.asarray([prompt], dtype=np.int64)
        mask = np.ones_like(ids)
        past = None
        for _ in range(limit):
            logits, past = self.decoder.step(ids, mask, past)
            token = pick(logits[0, -1], temperature, top_k, rng)
            if token in self.eos:
                return
            yield token
            ids = np.asarray([[token]], dtype=np.int64)
            mask = np.ones((1, mask.shape[1] + 1), dtype=np.int64)

    def pieces(self, prompt: list[int], max_new_tokens: int, temperature: float = 0.0, top_k: int = 0,
               seed: int = 0) -> Iterator[str]:
        """The reply as text pieces, decoded incrementally (a multi-byte character comes out whole, once its
        last token is there); special tokens are left out."""
        from tokenizers.decoders import DecodeStream

        decode = DecodeStream(skip_special_tokens=True)
        for token in self.tokens(prompt, max_new_tokens, temperature, top_k, seed):
            piece = decode.step(self.tokenizer, token)
            if piece:
                yield piece


def pick(logits: np.ndarray, temperature: float, top_k: int, rng: np.random.Generator) -> int:
    """argmax at temperature 0; otherwise a draw from softmax(logits / temperature), over the ``top_k``
    likeliest tokens when ``top_k`` > 0."""
    if temperature <= 0:
        return int(logits.argmax())
    scaled = logits.astype(np.float64) / temperature
    if 0 < top_k < scaled.size:
        kth = np.partition(scaled, -top_k)[-top_k]
        scaled = np.where(scaled >= kth, scaled, -np.inf)
    probs = np.exp(scaled - scaled.max())
    return int(rng.choice(scaled.size, p=probs / probs.sum()))
