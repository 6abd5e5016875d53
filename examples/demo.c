/* demo: MLM next to diffusion on the bundled corpus.
 *
 * The model, trainer and sampler are not part of this release yet; until
 * they are, the demo reports the library it runs on and what it will show. */
#include <stdio.h>

#include "textdiff/textdiff.h"

int main(void)
{
    td_status st = TD_CHECK_VERSION();
    if (st != TD_OK) {
        fprintf(stderr, "demo: %s: %s\n", td_status_string(st), td_last_error_message());
        return 1;
    }
    printf("libtextdiff %s (ABI %u)\n", td_version_string(), (unsigned)td_abi_version());
    printf("\nThis demo will train and compare two models on the King James Bible:\n"
           "  MLM        one masking rate (15%%), as BERT is trained\n"
           "  diffusion  every masking rate, weighted by the ELBO\n"
           "and then generate text from each by iterative unmasking, at 1 step and\n"
           "at many, printing samples side by side with each model's NELBO and\n"
           "per-masking-rate loss. The model and sampler arrive in later releases.\n");
    return 0;
}
