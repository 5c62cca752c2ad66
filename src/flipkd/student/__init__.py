"""The student LLM: LoRA (peft) with the A-tap, the label head, and batched inference."""

from flipkd.student.build import assemble_student, build_student, load_base
from flipkd.student.infer import encode, score_pairs
from flipkd.student.model import GenOutput, Student
from flipkd.student.prompt import PROMPTS, PromptSpec, resolve_prompt
from flipkd.student.tap import ATap

__all__ = [
    "ATap",
    "GenOutput",
    "PROMPTS",
    "PromptSpec",
    "Student",
    "assemble_student",
    "build_student",
    "encode",
    "load_base",
    "resolve_prompt",
    "score_pairs",
]
