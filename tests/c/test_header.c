/*
 * The header: included twice in one translation unit; its version macros
 * equal the Cargo version (passed by tests/c_api.rs as EXPECTED_*), derived
 * macros included; the library agrees at run time.
 */
#include "promshm.h"
#include "promshm.h" /* twice: the include guard must hold */

#include "common.h"

#if !defined(EXPECTED_MAJOR) || !defined(EXPECTED_MINOR) || !defined(EXPECTED_PATCH) || \
    !defined(EXPECTED_STRING)
#error "compile with -DEXPECTED_MAJOR=.. -DEXPECTED_MINOR=.. -DEXPECTED_PATCH=.. -DEXPECTED_STRING=.."
#endif

#if PROMSHM_VERSION_MAJOR != EXPECTED_MAJOR
#error "PROMSHM_VERSION_MAJOR differs from Cargo.toml"
#endif
#if PROMSHM_VERSION_MINOR != EXPECTED_MINOR
#error "PROMSHM_VERSION_MINOR differs from Cargo.toml"
#endif
#if PROMSHM_VERSION_PATCH != EXPECTED_PATCH
#error "PROMSHM_VERSION_PATCH differs from Cargo.toml"
#endif
#if PROMSHM_VERSION_NUMBER != EXPECTED_MAJOR * 1000000 + EXPECTED_MINOR * 1000 + EXPECTED_PATCH
#error "PROMSHM_VERSION_NUMBER is not MAJOR * 1000000 + MINOR * 1000 + PATCH"
#endif

#ifdef __cplusplus
static_assert(sizeof(promshm_result) == 4, "promshm_result is 32 bits");
static_assert(sizeof(promshm_format) == 4, "promshm_format is 32 bits");
#else
_Static_assert(sizeof(promshm_result) == 4, "promshm_result is 32 bits");
_Static_assert(sizeof(promshm_format) == 4, "promshm_format is 32 bits");
#endif

int main(void) {
    EXPECT(strcmp(PROMSHM_VERSION_STRING, EXPECTED_STRING) == 0);
    EXPECT(strcmp(promshm_version(), PROMSHM_VERSION_STRING) == 0);
    EXPECT(promshm_version_number() == PROMSHM_VERSION_NUMBER);
    EXPECT(PROMSHM_DEFAULT_BUCKETS_COUNT == 11);
    size_t n = 0;
    const double *b = promshm_default_buckets(&n);
    EXPECT(b != NULL && n == PROMSHM_DEFAULT_BUCKETS_COUNT && b[0] == 0.005 && b[n - 1] == 10.0);
    printf("header: version %s, %d checks passed\n", promshm_version(), g_checks);
    return 0;
}
