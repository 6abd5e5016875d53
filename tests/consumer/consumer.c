/* A host program: checks at run time that the library it loaded matches the
 * header it was compiled with, then exercises the error model. */
#include <stdio.h>
#include <string.h>

#include <textdiff/textdiff.h>

int main(void)
{
    if (TD_CHECK_VERSION() != TD_OK) {
        fprintf(stderr, "consumer: %s\n", td_last_error_message());
        return 1;
    }
    if (strcmp(td_version_string(), TD_VERSION_STRING) != 0) {
        fprintf(stderr, "consumer: loaded %s, compiled against %s\n", td_version_string(),
                TD_VERSION_STRING);
        return 1;
    }
    if (td_check_version(TD_ABI_VERSION + 1, TD_VERSION_NUMBER) != TD_ERR_VERSION ||
        td_last_error_message()[0] == '\0') {
        fprintf(stderr, "consumer: an ABI mismatch went unnoticed\n");
        return 1;
    }
    printf("consumer: libtextdiff %s ok\n", td_version_string());
    return 0;
}
