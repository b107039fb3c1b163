"""Recursive proving through subgoal decomposition (DeepSeek-Prover-V2, arXiv 2504.21801 §2.1), v2:
sketches checked, repaired and masked by Lean (sketch.py), hole statements from Lean's own
`extract_goal` (statements.py), and every hole of every target proved inside the run's one sample-major
scheduler with triage, reuse and a recorded tree (tree.py)."""

from proverctl.lean.verdict import Policy


def composed_policy(policy: Policy) -> Policy:
    """The composed proof puts the proved subgoal lemmas before the theorem: allow exactly that."""
    return Policy(allow_native_decide=policy.allow_native_decide, allow_aux_lemmas=True)
