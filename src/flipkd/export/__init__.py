"""Export a trained student (adapter, merged model, embedder, card) and load it back."""

from flipkd.export.export import StudentRun, export_run, read_student_run
from flipkd.export.load import FlipkdMatcher, load_matcher

__all__ = ["FlipkdMatcher", "StudentRun", "export_run", "load_matcher", "read_student_run"]
