# Fuzz targets (docs/RELIABILITY.md). Included from tests/CMakeLists.txt after
# df11_tests is defined:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz.cmake)
#
# Always: the entry logic of every target (df11_fuzz_<target>() in
# tests/fuzz/fuzz_<target>.cpp) is a static library linked into df11_tests,
# where tests/fuzz_corpus_replay_test.cpp replays tests/fuzz/corpus/<target>/.
# With -DDF11_FUZZ=ON (clang only): one libFuzzer binary per target,
# fuzz_<target>, with ASan + UBSan (scripts/fuzz.sh builds and runs them).
set(DF11_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
set(DF11_FUZZ_TARGETS safetensors_header container huffman roundtrip)

set(_df11_fuzz_sources)
foreach(t ${DF11_FUZZ_TARGETS})
  list(APPEND _df11_fuzz_sources ${DF11_FUZZ_DIR}/fuzz_${t}.cpp)
endforeach()
add_library(df11_fuzz_targets STATIC ${_df11_fuzz_sources})
target_include_directories(df11_fuzz_targets PUBLIC ${DF11_FUZZ_DIR} PRIVATE ${XXHASH_INCLUDE_DIR} ${ZSTD_INCLUDE_DIR})
target_link_libraries(df11_fuzz_targets PUBLIC df11_core df11_codec ${ZSTD_LIBRARY})

target_link_libraries(df11_tests PRIVATE df11_fuzz_targets)
target_compile_definitions(df11_tests PRIVATE DF11_FUZZ_CORPUS_DIR="${DF11_FUZZ_DIR}/corpus")

# Regenerates the seed corpora (not built by default):
#   cmake --build build --target df11_fuzz_make_corpus && build/tests/df11_fuzz_make_corpus tests/fuzz/corpus
add_executable(df11_fuzz_make_corpus EXCLUDE_FROM_ALL ${DF11_FUZZ_DIR}/fuzz_make_corpus.cpp)
target_link_libraries(df11_fuzz_make_corpus PRIVATE df11_test_support df11_core df11_codec)
target_include_directories(df11_fuzz_make_corpus PRIVATE ${XXHASH_INCLUDE_DIR} ${ZSTD_INCLUDE_DIR})
target_link_libraries(df11_fuzz_make_corpus PRIVATE ${ZSTD_LIBRARY})

if(DF11_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "DF11_FUZZ=ON needs clang with libFuzzer: configure with CXX=clang++ (see scripts/fuzz.sh)")
  endif()
  # Coverage instrumentation for the code under test; everything that links
  # df11_codec inherits it. ASan + UBSan come from DF11_SANITIZE, or are added
  # here the same way when it is off.
  target_compile_options(df11_codec PUBLIC -fsanitize=fuzzer-no-link)
  if(NOT DF11_SANITIZE)
    target_compile_options(df11_codec PUBLIC -fsanitize=address,undefined -fno-omit-frame-pointer
                                             -fno-sanitize-recover=undefined)
    target_link_options(df11_codec PUBLIC -fsanitize=address,undefined)
  endif()
  foreach(t ${DF11_FUZZ_TARGETS})
    add_executable(fuzz_${t} ${DF11_FUZZ_DIR}/libfuzzer_fuzz_main.cpp)
    target_compile_definitions(fuzz_${t} PRIVATE DF11_FUZZ_ENTRY=df11_fuzz_${t})
    target_link_libraries(fuzz_${t} PRIVATE df11_fuzz_targets)
    target_link_options(fuzz_${t} PRIVATE -fsanitize=fuzzer)
  endforeach()
endif()
