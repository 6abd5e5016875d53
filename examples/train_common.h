#ifndef TD_EXAMPLES_TRAIN_COMMON_H
#define TD_EXAMPLES_TRAIN_COMMON_H

enum { TRAIN_MLM = 0, TRAIN_DIFFUSION = 1, TRAIN_AR = 2 };

/* Runs the shared training program: TRAIN_MLM, TRAIN_DIFFUSION, or TRAIN_AR
 * (a causal model: next-token prediction). */
int train_main(int argc, char **argv, int kind);

#endif
