# Helper programs built with the tests (included from tests/CMakeLists.txt).
add_executable(make_sample_model ${CMAKE_CURRENT_LIST_DIR}/make_sample_model.cpp)
target_link_libraries(make_sample_model PRIVATE df11_test_support)
add_executable(make_bench_file ${CMAKE_CURRENT_LIST_DIR}/make_bench_file.cpp)
target_link_libraries(make_bench_file PRIVATE df11_test_support nlohmann_json::nlohmann_json)
add_executable(write_path_bench ${CMAKE_CURRENT_LIST_DIR}/write_path_bench.cpp)
target_link_libraries(write_path_bench PRIVATE Threads::Threads)
