# cJSON (Debian 12: libcjson-dev), the JSON parser of the Hugging Face file
# readers. The one place that finds it: sets TD_CJSON_INCLUDE_DIR and
# TD_CJSON_LIBRARY (plain paths, so the exported targets and textdiff.pc need
# no find module). Included once from the top-level CMakeLists.txt.
if(NOT TD_CJSON_LIBRARY)
  find_path(TD_CJSON_INCLUDE_DIR cjson/cJSON.h)
  find_library(TD_CJSON_LIBRARY NAMES cjson)
  if(NOT TD_CJSON_INCLUDE_DIR OR NOT TD_CJSON_LIBRARY)
    message(FATAL_ERROR "textdiff: cJSON not found (Debian: apt-get install libcjson-dev)")
  endif()
endif()
