// The entry point of lrt_tests: doctest's own main, so the usual filters
// (--test-case, --source-file, ...) select the suites to run.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
