# Build helpers shared by every module. Each module is one library with declared dependencies.

set(VERBUND_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wno-unused-parameter
  -Wno-missing-field-initializers)
# GCC 12 reports -Wmaybe-uninitialized false positives inside std::variant/std::optional at
# -O2 (e.g. moving a variant holding a std::string); keep the warning for clang builds.
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  list(APPEND VERBUND_WARNINGS -Wno-maybe-uninitialized)
endif()
if(VERBUND_WERROR)
  list(APPEND VERBUND_WARNINGS -Werror)
endif()

if(VERBUND_SANITIZE)
  add_compile_options(-fsanitize=${VERBUND_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${VERBUND_SANITIZE})
endif()
if(VERBUND_LIBFUZZER)
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

# verbund_library(NAME SOURCES a.cpp ... DEPS lib ...)
function(verbund_library name)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${A_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(${name} PRIVATE ${VERBUND_WARNINGS})
  target_link_libraries(${name} PUBLIC ${A_DEPS} PRIVATE ${A_PRIVATE_DEPS})
endfunction()

# verbund_test(NAME SOURCES a_test.cpp ... DEPS lib ...): a GoogleTest binary under ctest.
function(verbund_test name)
  cmake_parse_arguments(A "" "" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${A_SOURCES})
  target_compile_options(${name} PRIVATE ${VERBUND_WARNINGS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE ${A_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    VERBUND_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data")
  include(GoogleTest)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "unit\\;${A_LABELS}")
endfunction()

# verbund_fuzzer(NAME SOURCE f.cpp DEPS lib ... CORPUS dir): with VERBUND_LIBFUZZER a libFuzzer
# binary; otherwise a replay binary that runs every file of the seed corpus as a ctest test.
function(verbund_fuzzer name)
  cmake_parse_arguments(A "" "SOURCE" "DEPS;CORPUS" ${ARGN})
  if(VERBUND_LIBFUZZER)
    add_executable(${name} ${A_SOURCE})
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  else()
    add_executable(${name} ${A_SOURCE} ${PROJECT_SOURCE_DIR}/fuzz/replay_main.cpp)
    add_test(NAME fuzz_replay.${name} COMMAND ${name} ${A_CORPUS})
    set_tests_properties(fuzz_replay.${name} PROPERTIES LABELS "fuzz")
  endif()
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_compile_options(${name} PRIVATE ${VERBUND_WARNINGS})
  target_link_libraries(${name} PRIVATE ${A_DEPS})
endfunction()
