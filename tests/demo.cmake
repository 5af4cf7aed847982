# The README's first command, `bash scripts/demo.sh`, must exit 0 (issue 11:
# it used to do all its work and exit 141 at `df11 info | head -20`). It runs
# against this build directory, which is already configured and built, so it
# neither reconfigures nor rebuilds anything, and scripts/setup.sh installs
# nothing where the packages are present. RUN_SERIAL: it calls cmake --build
# on this tree.
add_test(NAME demo_script
         COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/demo.sh ${CMAKE_CURRENT_BINARY_DIR}/demo-work)
set_tests_properties(demo_script PROPERTIES
  ENVIRONMENT "DF11_BUILD_DIR=${PROJECT_BINARY_DIR}"
  RUN_SERIAL TRUE
  TIMEOUT 900)
