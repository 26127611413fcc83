"""Checks the import contracts of `.importlinter` (import-linter) on the installed package layout.

The repository keeps `training/` and `data_prep/` beside `ddsp/`, while they install as `ddsp.training` and
`ddsp.data_prep` (see setup.py). import-linter reads packages from the file system, so this script lays the
sources out as they install (a copy in a temporary folder) and runs `lint-imports` on that copy.
"""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAYOUT = {'ddsp': 'ddsp', os.path.join('ddsp', 'training'): 'training',
          os.path.join('ddsp', 'data_prep'): 'data_prep'}


def main():
  ignore = shutil.ignore_patterns('__pycache__', '*.pyc', 'assets')
  with tempfile.TemporaryDirectory(prefix='ddsp_imports_') as tmp:
    for target, source in LAYOUT.items():
      shutil.copytree(os.path.join(ROOT, source), os.path.join(tmp, target), ignore=ignore, dirs_exist_ok=True)
    env = dict(os.environ, PYTHONPATH=tmp, TF_CPP_MIN_LOG_LEVEL='3')
    linter = os.path.join(os.path.dirname(sys.executable), 'lint-imports')
    cmd = [linter, '--config', os.path.join(ROOT, '.importlinter'), '--no-cache']
    return subprocess.run(cmd, cwd=tmp, env=env, check=False).returncode


if __name__ == '__main__':
  sys.exit(main())
