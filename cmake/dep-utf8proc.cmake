# utf8proc (Debian 12: libutf8proc-dev): Unicode categories, decomposition
# and case mapping for the Hugging Face tokenizers. The one place that finds
# it: sets TD_UTF8PROC_INCLUDE_DIR and TD_UTF8PROC_LIBRARY (plain paths).
if(NOT TD_UTF8PROC_LIBRARY)
  find_path(TD_UTF8PROC_INCLUDE_DIR utf8proc.h)
  find_library(TD_UTF8PROC_LIBRARY NAMES utf8proc)
  if(NOT TD_UTF8PROC_INCLUDE_DIR OR NOT TD_UTF8PROC_LIBRARY)
    message(FATAL_ERROR "textdiff: utf8proc not found (Debian: apt-get install libutf8proc-dev)")
  endif()
endif()
