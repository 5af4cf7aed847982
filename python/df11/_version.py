# Kept equal to the CMake project version (tests/python checks it against libdf11.so).
__version__ = "1.0.0"
