/* train_ar: the autoregressive baseline — the same transformer in causal
 * mode and the same trainer, which then predicts each next token. */
#include "train_common.h"

int main(int argc, char **argv) { return train_main(argc, argv, TRAIN_AR); }
