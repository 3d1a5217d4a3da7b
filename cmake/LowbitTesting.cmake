# Test helpers for lowbit. Included by tests/CMakeLists.txt after find_package(doctest) + include(doctest).
#
#   lowbit_add_test(NAME <name> SOURCES <file>... [LIBRARIES <lib>...])
#       A doctest executable <name> linking lowbit::lowbit, the shared doctest main (lowbit_doctest_main),
#       doctest::doctest and lowbit_warnings. Each TEST_CASE becomes one ctest test named "<name>/<case>".
#       Test files include <doctest/doctest.h> and must NOT define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN.
#       A case that does not run (a doctest::skip decorator: a CPU without the instruction set, no dataset)
#       is reported by ctest as skipped, not passed: doctest then prints "test cases: 0 |" for it. A test case
#       name must not contain ';' (doctest_discover_tests splits the name there, and neither half matches a
#       case: that showed as 5 cases that had never run under ctest, now renamed).
#
#   lowbit_add_compile_fail(NAME <name> SOURCE <file> REGEX <regex>)
#       Compile-fail pair (Eigen's ei_add_failtest, packaging.md §5). The same file builds two object libraries
#       that are EXCLUDE_FROM_ALL, compiled with -fsyntax-only: <name>_ok with -DLOWBIT_SHOULD_FAIL=0 (must
#       compile) and <name>_ko with -DLOWBIT_SHOULD_FAIL=1 (must fail, and its build output must match <regex>).
#       ctest tests of the same names build them. Test the macro with `#if LOWBIT_SHOULD_FAIL`. The regex must
#       not match build progress lines (target or file names): use the concept name or static_assert text.

include_guard(GLOBAL)

function(lowbit_add_test)
    cmake_parse_arguments(PARSE_ARGV 0 arg "" "NAME" "SOURCES;LIBRARIES")
    if(NOT arg_NAME OR NOT arg_SOURCES)
        message(FATAL_ERROR "lowbit_add_test: NAME and SOURCES are required")
    endif()
    if(arg_UNPARSED_ARGUMENTS)
        message(FATAL_ERROR "lowbit_add_test(${arg_NAME}): unknown arguments ${arg_UNPARSED_ARGUMENTS}")
    endif()
    add_executable(${arg_NAME} ${arg_SOURCES})
    target_link_libraries(${arg_NAME} PRIVATE lowbit::lowbit lowbit_doctest_main doctest::doctest
                                              lowbit_warnings ${arg_LIBRARIES})
    # The sources of one test executable compile as one TU: each would otherwise parse the same few seconds
    # of headers again (xtensor and lowbit's own), and CI builds the suite twice (test and asan presets).
    set_target_properties(${arg_NAME} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 0)
    doctest_discover_tests(${arg_NAME} TEST_PREFIX "${arg_NAME}/" ADD_LABELS 1
                           PROPERTIES SKIP_REGULAR_EXPRESSION "test cases: *0 [|]")
endfunction()

function(lowbit_add_compile_fail)
    cmake_parse_arguments(PARSE_ARGV 0 arg "" "NAME;SOURCE;REGEX" "LIBRARIES")
    if(NOT arg_NAME OR NOT arg_SOURCE OR NOT arg_REGEX)
        message(FATAL_ERROR "lowbit_add_compile_fail: NAME, SOURCE and REGEX are required")
    endif()
    if(arg_UNPARSED_ARGUMENTS)
        message(FATAL_ERROR "lowbit_add_compile_fail(${arg_NAME}): unknown arguments ${arg_UNPARSED_ARGUMENTS}")
    endif()
    foreach(kind ok ko)
        set(tgt ${arg_NAME}_${kind})
        # Checked by the compiler's front end alone (-fsyntax-only: templates are instantiated, static_asserts
        # and concepts evaluated, no code generated): an object library whose object is never written, so the
        # test compiles the file again on every run. Half the time of a full compile and link.
        add_library(${tgt} OBJECT EXCLUDE_FROM_ALL ${arg_SOURCE})
        target_link_libraries(${tgt} PRIVATE lowbit::lowbit lowbit_warnings ${arg_LIBRARIES})
        target_compile_options(${tgt} PRIVATE $<$<CXX_COMPILER_ID:GNU,Clang,AppleClang>:-fsyntax-only>)
        if(kind STREQUAL "ko")
            target_compile_definitions(${tgt} PRIVATE LOWBIT_SHOULD_FAIL=1)
        else()
            target_compile_definitions(${tgt} PRIVATE LOWBIT_SHOULD_FAIL=0)
        endif()
        get_property(multi_config GLOBAL PROPERTY GENERATOR_IS_MULTI_CONFIG)
        if(multi_config)
            set(config_args --config $<CONFIG>)
        else()
            set(config_args)
        endif()
        add_test(NAME ${tgt} COMMAND ${CMAKE_COMMAND} --build ${CMAKE_BINARY_DIR} --target ${tgt} ${config_args})
        # Builds in one tree must not run concurrently.
        set_tests_properties(${tgt} PROPERTIES RESOURCE_LOCK lowbit_compile_fail_build LABELS compile_fail)
    endforeach()
    # PASS_REGULAR_EXPRESSION makes ctest ignore the exit code and look for the diagnostic instead;
    # no WILL_FAIL (it would invert the result).
    set_tests_properties(${arg_NAME}_ko PROPERTIES PASS_REGULAR_EXPRESSION "${arg_REGEX}")
endfunction()

# lowbit_add_cli_test(NAME <name> SCRIPT <sh script> PASS <regex>)
#     A command-line test: the sh script runs in a subshell, then its exit status is printed as "[exit N]". The
#     test passes when the output matches <regex> AND the status is 0. (PASS_REGULAR_EXPRESSION alone makes
#     ctest ignore the exit status, so a script's `test $? -eq 1` could never fail.) A script that expects a
#     command to fail checks that command's status itself: `cmd; test $? -eq 1`, or `... || exit 1` midway.
#     Further test properties go through set_tests_properties as usual.
function(lowbit_add_cli_test)
    cmake_parse_arguments(PARSE_ARGV 0 arg "" "NAME;SCRIPT;PASS" "")
    if(NOT arg_NAME OR NOT arg_SCRIPT OR NOT arg_PASS)
        message(FATAL_ERROR "lowbit_add_cli_test: NAME, SCRIPT and PASS are required")
    endif()
    if(arg_UNPARSED_ARGUMENTS)
        message(FATAL_ERROR "lowbit_add_cli_test(${arg_NAME}): unknown arguments ${arg_UNPARSED_ARGUMENTS}")
    endif()
    add_test(NAME ${arg_NAME} COMMAND sh -c "( ${arg_SCRIPT} ) 2>&1; echo \"[exit $?]\"")
    set_tests_properties(${arg_NAME} PROPERTIES PASS_REGULAR_EXPRESSION "(${arg_PASS}).*\\[exit 0\\]")
endfunction()
