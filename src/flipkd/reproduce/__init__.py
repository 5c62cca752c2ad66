"""``flipkd reproduce``: the paper's ablation ladder on one benchmark, resumable, with plots."""

from flipkd.reproduce.ladder import ROWS, run_ladder
from flipkd.reproduce.profiles import PROFILES, Profile

__all__ = ["PROFILES", "ROWS", "Profile", "run_ladder"]
