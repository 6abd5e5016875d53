// Compiled, not run: the public header stands alone in pedantic C++.
#include "textdiff/textdiff.h"

int td_header_check_cxx();
int td_header_check_cxx() { return TD_VERSION_NUMBER > 0 && TD_OK == 0; }
