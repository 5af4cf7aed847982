# The Python package's tests (python/tests, pytest) against the libdf11.so and
# the df11 CLI of this build. Torch and GPU tests inside skip, and say so,
# where torch or a GPU is absent. Without python3 + numpy + pytest the test
# is reported as skipped (CI installs them: .ci/run).
find_package(Python3 COMPONENTS Interpreter)
set(DF11_PYTEST_MISSING "")
if(DF11_SANITIZE OR DF11_TSAN)
  # A sanitizer-instrumented libdf11.so cannot be loaded into an uninstrumented python.
  set(DF11_PYTEST_MISSING "the sanitizer build's libdf11.so cannot be loaded into an uninstrumented python")
elseif(NOT Python3_Interpreter_FOUND)
  set(DF11_PYTEST_MISSING "python3 not found")
else()
  execute_process(COMMAND ${Python3_EXECUTABLE} -c "import numpy, pytest"
                  RESULT_VARIABLE _df11_py_rc OUTPUT_QUIET ERROR_QUIET)
  if(NOT _df11_py_rc EQUAL 0)
    set(DF11_PYTEST_MISSING "numpy or pytest missing for ${Python3_EXECUTABLE} (pip install numpy pytest ml_dtypes)")
  endif()
endif()
if(DF11_PYTEST_MISSING)
  # The reason travels as $0, so that no quoting in it can break the shell line.
  add_test(NAME python COMMAND sh -c "echo \"$0\"; exit 77"
           "skipped: ${DF11_PYTEST_MISSING}")
  set_tests_properties(python PROPERTIES SKIP_RETURN_CODE 77)
else()
  add_test(NAME python
           COMMAND ${Python3_EXECUTABLE} -m pytest -q -rs -p no:cacheprovider ${PROJECT_SOURCE_DIR}/python/tests
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(python PROPERTIES TIMEOUT 900 ENVIRONMENT
    "DF11_LIBRARY=$<TARGET_FILE:df11>;DF11_CLI=$<TARGET_FILE:df11_cli>;PYTHONPATH=${PROJECT_SOURCE_DIR}/python")
endif()
