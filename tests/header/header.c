/* Compiled, not run: the public header stands alone in pedantic C11. */
#include "textdiff/textdiff.h"

int td_header_check_c(void);
int td_header_check_c(void) { return TD_VERSION_NUMBER > 0 && TD_OK == 0; }
