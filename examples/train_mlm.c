/* train_mlm: BERT-style masked language modelling — the trainer with a
 * fixed-rate schedule (15% by default). */
#include "train_common.h"

int main(int argc, char **argv) { return train_main(argc, argv, TRAIN_MLM); }
