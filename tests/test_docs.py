"""docs/DESIGN.md stays true: the tests and files it names exist, and every section the code cites is in it."""
import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
DESIGN = (ROOT / "docs" / "DESIGN.md").read_text()
CITING = ("interlingua_jax", "configs", "benchmarks", "launch", "tests", "docs", "README.md")


def design_sections() -> set[str]:
  """"2", "3", … from the `## N.` headings, and "3.1" … from the rows of the §3 table."""
  top = set(re.findall(r"^## (\d+)\.", DESIGN, flags=re.M))
  return top | set(re.findall(r"^\| (3\.\d+) \|", DESIGN, flags=re.M))


def test_mistakes_are_numbered_3_1_to_3_15_and_sections_2_3_6_exist():
  sections = design_sections()
  assert {f"3.{i}" for i in range(1, 16)} <= sections and not {f"3.{i}" for i in (0, 16)} & sections
  assert {"2", "3", "6"} <= sections


def test_named_tests_and_files_exist():
  """`tests/x.py::test_y`, and `::test_z` after it (same file), are test functions of that file."""
  current, checked = None, 0
  for file, name in re.findall(r"`(tests/\w+\.py)?::(test_\w+)`", DESIGN):
    current = file or current
    tree = ast.parse((ROOT / current).read_text())
    assert name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, f"{current}::{name}"
    checked += 1
  assert checked >= 15
  for path in re.findall(r"`((?:tests|benchmarks|configs|interlingua_jax|docs)/[\w/.]+\.(?:py|md))", DESIGN):
    assert (ROOT / path).exists(), path


def test_every_cited_section_exists():
  """`DESIGN.md §3.2, 3.3, 3.11`, `DESIGN §6` … anywhere in the repository name sections of DESIGN.md."""
  sections, cited = design_sections(), {}
  files = [p for c in CITING for p in ([ROOT / c] if (ROOT / c).is_file() else (ROOT / c).rglob("*"))
           if p.suffix in (".py", ".md", ".sh", ".sbatch") and p.name != "DESIGN.md"]
  for path in files:
    text = " ".join(path.read_text().split())  # a citation may wrap over lines
    for match in re.finditer(r"DESIGN(?:\.md)? (§[\d.]+(?:,? (?:§|and )?\d+\.\d+)*)", text):
      for number in re.findall(r"\d+(?:\.\d+)?", match.group(1)):
        cited.setdefault(number.rstrip("."), []).append(path.relative_to(ROOT).as_posix())
  assert len(cited) >= 10
  missing = {n: where for n, where in cited.items() if n not in sections}
  assert not missing, f"sections cited but absent from docs/DESIGN.md: {missing}"
