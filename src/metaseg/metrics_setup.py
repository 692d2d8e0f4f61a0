"""Builds the MetaSeg metrics extension in place: `python metrics_setup.py build_ext --inplace`."""
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

extension = Extension("metrics", ["metrics.pyx"], include_dirs=[np.get_include()],
                      define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                      extra_compile_args=["-O3"])
setup(name="metaseg-metrics", ext_modules=cythonize([extension], compiler_directives={"language_level": 3}))
