"""CI runs exactly the README's second set-up line, and that line lints and type-checks before it tests."""

from pathlib import Path

ROOT = Path(__file__).parents[1]


def _quick_start_commands() -> list[str]:
    block = (ROOT / "README.md").read_text(encoding="utf-8").split("## Quick start", 1)[1].split("```bash", 1)[1]
    return [line for line in block.split("```", 1)[0].splitlines() if line.strip() and not line.startswith("#")]


def test_ci_runs_the_readme_test_line():
    ci_commands = [
        line
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci_commands == [_quick_start_commands()[1]]


def test_lint_runs_before_the_tests():
    steps = [step.strip() for step in _quick_start_commands()[1].split("&&")]
    lint = ["ruff check .", "ruff format --check .", "mypy flexpredict"]
    assert steps[-len(lint) - 1 :] == lint + ["python -m pytest"]
