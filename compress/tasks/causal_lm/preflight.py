"""Tokenizer preflight: can the teacher's next-token distributions be compared with the student's, token by token?

- identical: the same vocabulary (token -> id) and the same output size -> direct;
- sliced: the same family, padded vocabularies (Qwen's 151936 vs 152064 output rows, a tokenizer that is a
  prefix of the other): every token both know has the same id, and every id the tokenizers (and the data) use
  lies below the smaller output size -> both distributions are sliced to that shared part;
- different: anything else -> token-level distillation is refused with the reason; sequence-level distillation
  (``distill.sequence.mode: only``: the student learns the teacher's generated text with its own tokenizer) works.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Preflight:
    mode: str  # identical | sliced | different
    shared_vocab: int  # output rows compared (the smaller output size); 0 when different
    teacher_vocab: int
    student_vocab: int
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def compare(teacher_tokenizer, student_tokenizer, teacher_vocab: int, student_vocab: int,
            data_ids=None) -> Preflight:
    """``teacher_vocab`` / ``student_vocab``: the models' output sizes (logit rows); ``data_ids``: optional token
    ids of the training data, checked against the shared part too."""
    tv, sv = teacher_tokenizer.get_vocab(), student_tokenizer.get_vocab()

    def result(mode, shared, reason):
        return Preflight(mode, shared, teacher_vocab, student_vocab, reason)

    if tv == sv and teacher_vocab == student_vocab and _specials(teacher_tokenizer) == _specials(student_tokenizer):
        return result("identical", teacher_vocab, f"identical tokenizers ({len(tv)} tokens) and output sizes")
    small, large, small_name = (sv, tv, "student") if len(sv) <= len(tv) else (tv, sv, "teacher")
    moved = [(tok, i, large.get(tok)) for tok, i in small.items() if large.get(tok) != i]
    if moved:
        tok, i, j = moved[0]
        where = f"id {j} in the other" if j is not None else "absent from the other"
        return result("different", 0, f"{len(moved)} of the {small_name}'s {len(small)} tokens have another id or are "
                      f"missing in the other tokenizer (first: {tok!r} is id {i} in the {small_name}'s, {where})")
    if _specials(teacher_tokenizer) != _specials(student_tokenizer):
        return result("different", 0, f"special tokens differ: teacher {_specials(teacher_tokenizer)}, "
                      f"student {_specials(student_tokenizer)}")
    shared = min(teacher_vocab, student_vocab)
    used = max(max(tv.values()), max(sv.values()))
    if used >= shared:
        return result("different", 0, f"the tokenizers use ids up to {used}, beyond the shared output size {shared} "
                      f"(teacher {teacher_vocab}, student {student_vocab} rows)")
    if data_ids is not None:
        top = max((max(r) for r in data_ids if r), default=-1)
        if top >= shared:
            return result("different", 0, f"the training data holds token id {top}, beyond the shared output size {shared}")
    extra = abs(teacher_vocab - student_vocab)
    return result("sliced", shared, f"same family: {len(small)} shared tokens with the same ids; output sizes "
                  f"{teacher_vocab} (teacher) and {student_vocab} (student); the {extra} extra rows are never produced "
                  f"by either tokenizer (ids used < {used + 1}), so both distributions are sliced to the first {shared}")


def _specials(tokenizer) -> dict:
    return {k: getattr(tokenizer, f"{k}_token_id", None) for k in ("bos", "eos")}


def refusal(pre: Preflight) -> str:
    """The error line when token-level distillation cannot run."""
    return (f"distill: teacher and student tokenizers differ, so their next-token distributions cannot be compared "
            f"token by token: {pre.reason}. Use sequence-level distillation instead (distill.sequence.mode: only: the "
            f"teacher writes completions, the student learns them with its own tokenizer), or a student of the "
            f"teacher's family")
