"""Every registered model: converted once into the cache, loads, runs one forward, makes sense.

These load real weights from the packaged models (first run converts them: about a minute
each for the GGUF students), so they are marked ``real``.
"""

from __future__ import annotations

import pytest
import torch

from flipkd.models import REGISTRY, resolve

pytestmark = pytest.mark.real

STUDENTS = [n for n, s in REGISTRY.items() if s.role == "student"]
TEACHERS = [n for n, s in REGISTRY.items() if s.role == "teacher"]


def _greedy(path: str, prompt: str, n: int = 6) -> str:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    ids = tok(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(
            **ids, max_new_tokens=n, do_sample=False, pad_token_id=tok.eos_token_id
        )
    return tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


@pytest.mark.parametrize("name", STUDENTS)
def test_student_continues_a_simple_prompt(name):
    model = resolve(name, "student")
    assert "6" in _greedy(model.path, "1, 2, 3, 4, 5,", 4)
    assert (model_dir := __import__("pathlib").Path(model.path) / "model.safetensors").is_file()
    assert model_dir.stat().st_size > 100e6


@pytest.mark.parametrize("name", ["smollm2-135m", "qwen2.5-0.5b"])
def test_instruct_students_know_a_fact(name):
    assert "Paris" in _greedy(resolve(name, "student").path, "The capital of France is")


@pytest.mark.parametrize("name", TEACHERS)
def test_teacher_ranks_a_paraphrase_above_an_unrelated_text(name):
    from sentence_transformers import SentenceTransformer

    model = resolve(name, "teacher")
    st = SentenceTransformer(model.path, device="cpu")
    texts = ["How do I reset my password?", "I forgot my password, how can I change it?",
             "What are the symptoms of diabetes?"]  # fmt: skip
    emb = st.encode(
        texts, prompt=model.query_prefix, convert_to_tensor=True, normalize_embeddings=True
    )
    assert float(emb[0] @ emb[1]) > float(emb[0] @ emb[2]) + 0.1


# (student, language): the label words are whole single tokens as they follow the plain prompt
SINGLE_TOKEN_LABELS = [
    ("smollm2-135m", "en"), ("qwen2.5-0.5b", "en"), ("qwen2.5-0.5b", "zh"),
    ("gemma3-270m", "en"), ("gemma3-270m", "zh"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "language"), SINGLE_TOKEN_LABELS)
def test_label_words_are_the_single_token_that_follows_the_plain_prompt(name, language):
    """The label id is what the tokenizer writes right after the rendered prompt, and it is the
    whole word: with a space before 否 Qwen2.5 wrote a partial byte and Gemma-3 a bare space."""
    from transformers import AutoTokenizer

    from flipkd.config.schema import PromptConfig
    from flipkd.student.prompt import label_prefix, label_token_ids, render, resolve_prompt

    tok = AutoTokenizer.from_pretrained(resolve(name, "student").path)
    spec = resolve_prompt(PromptConfig(language=language))
    ids = label_token_ids(tok, spec.label_words, label_prefix(spec, False))
    a, b = ("甲", "乙") if language == "zh" else ("a", "b")
    prompt = render(tok, spec, a, b, False)
    head = tok(prompt, add_special_tokens=False)["input_ids"]
    for word, want in zip(spec.label_words, ids, strict=True):
        whole = tok(prompt + spec.label_prefix + word, add_special_tokens=False)["input_ids"]
        tail = tok.convert_ids_to_tokens(whole[len(head) - 1 :])
        assert whole == [*head, want], (name, word, tail)


@pytest.mark.parametrize("name", ["qwen2.5-0.5b", "gemma3-270m"])
def test_a_shared_prompt_prefix_scores_as_the_plain_pass_on_real_students(name):
    """Gemma-3 (sliding-window layers, soft-capped logits) and Qwen2.5 through the KV cache."""
    from flipkd.config import StudentConfig
    from flipkd.student import build_student
    from flipkd.student.shared import shared_prefix_label_logits

    cfg = StudentConfig(model=name, max_length=128, max_text_length=32)
    cfg.prompt.use_chat_template = False
    st = build_student(cfg, benchmark="atec").eval()
    candidates = ["借呗怎么还款", "花呗还款方式", "我的花呗额度为什么降低了"]
    pairs = [("花呗怎么还款", c) for c in candidates]
    with torch.no_grad():
        want = st.gen_forward(pairs).label_logits
    torch.testing.assert_close(shared_prefix_label_logits(st, pairs), want, atol=1e-3, rtol=1e-3)
