#ifndef TD_EXAMPLES_TRAIN_COMMON_H
#define TD_EXAMPLES_TRAIN_COMMON_H

/* Runs the shared training program; diffusion = 0 trains MLM. */
int train_main(int argc, char **argv, int diffusion);

#endif
