"""The README's two set-up commands are exactly what CI runs, so a green CI proves the README."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", setup, flags=re.S)


def test_readme_has_exactly_two_setup_commands():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    assert all("\n" not in c for c in commands), "each set-up command is one line"
    assert "pip install" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_commands_verbatim():
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    for command in _readme_commands():
        assert command in ci, f"{command!r} is not in .ci/run"


def test_the_train_command_lists_every_trick_option():
    """The README's `twintricks train` synopsis names every trick flag of the recipe."""
    from twintricks.tricks import TRICKS

    text = (ROOT / "README.md").read_text()
    synopsis = text.split("- `twintricks train", 1)[1].split("` trains one recipe", 1)[0]
    missing = [o.cli_flag for t in TRICKS for o in t.options if o.cli_flag not in re.findall(r"--[a-z-]+", synopsis)]
    assert not missing, missing
