"""The repository's documents: every citation of the design document names the file in this repository and a
section it has; the README's Quickstart is exactly the two commands CI runs."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / 'docs' / 'DESIGN.md'


def tracked_text_files():
    names = subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not names:  # not a git checkout (an unpacked archive): every source file
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob('*') if p.suffix in ('.py', '.sh', '.md', '.txt')]
    return [ROOT / n for n in names if n.endswith(('.py', '.sh', '.md', '.txt', '.toml')) and (ROOT / n).is_file()
            and not n.startswith('docs/device/')]


def test_design_document_is_in_the_repository_and_cited_by_its_path():
    sections = {int(n) for n in re.findall(r'^## (\d+)\. ', DESIGN.read_text(), re.M)}
    assert {1, 2, 3, 4, 5} <= sections
    bad = []
    for path in tracked_text_files():
        if path in (DESIGN, Path(__file__).resolve()):  # the document itself, and this test's patterns
            continue
        for i, line in enumerate(path.read_text(errors='replace').splitlines(), 1):
            for m in re.finditer(r'(\S*)DESIGN(\.md)?', line):
                cited = re.search(r'DESIGN(?:\.md)?,? (?:§|Sec\. |section )(\d+)', line[m.start():])
                if not m.group(1).endswith('docs/') or (cited and int(cited.group(1)) not in sections):
                    bad.append(f'{path.relative_to(ROOT)}:{i}: {line.strip()}')
    assert not bad, 'design citations that are not docs/DESIGN.md or lack the section:\n' + '\n'.join(bad)


def test_quickstart_has_exactly_the_two_commands_and_ci_reads_the_second():
    readme = (ROOT / 'README.md').read_text()
    block = re.search(r'## Quickstart\n\n```bash\n(.*?)```', readme, re.S).group(1).strip().splitlines()
    assert block == ['pip install -r requirements.txt && bash scripts/quickstart.sh',
                     'pip install -r requirements.txt && python -m pytest -q tests']
    ci = (ROOT / '.ci' / 'run').read_text()
    assert block[1] in ci.splitlines()  # CI runs the README's test command, verbatim
    assert 'python3 -m venv' in ci and "rm -rf \"$venv\"" in ci


def test_the_editable_install_exposes_every_top_level_module_and_package():
    """`python tools/x.py` imports the project through the editable install (pyproject.toml): a top-level module
    or package missing there imports in the tests' process (the checkout is on its path) but not in a tool's."""
    import tomllib
    config = tomllib.loads((ROOT / 'pyproject.toml').read_text())['tool']['setuptools']
    modules = {p.stem for p in ROOT.glob('*.py')} - {'conftest'}  # pytest's, not the project's
    packages = {p.parent.name for p in ROOT.glob('*/__init__.py') if p.parent.name != 'tests'}
    assert set(config['py-modules']) == modules and set(config['packages']) == packages
