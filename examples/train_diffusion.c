/* train_diffusion: masked diffusion — the same trainer over every masking
 * rate, ELBO-weighted (log-linear schedule by default). */
#include "train_common.h"

int main(int argc, char **argv) { return train_main(argc, argv, TRAIN_DIFFUSION); }
