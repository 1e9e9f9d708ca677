"""The README's REPL tour runs as written (its ``>>>`` lines, in order)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python examples"
    namespace: dict = {}
    for block in blocks:
        code = "\n".join(line[4:] for line in block.splitlines() if line.startswith(">>> "))
        exec(compile(code, str(README), "exec"), namespace)
    assert namespace["system"].reduce().order == 6
    assert namespace["sol"].success


def test_readme_commands_match_ci():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    test_command = re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)[1]
    assert test_command.split("&& ", 2)[-1] in ci  # the install + test part, verbatim
