# cJSON (Debian: libcjson-dev), the library's JSON parser: Hugging Face's
# config.json and safetensors headers (docs/hf.md says why cJSON). Sets
# TD_CJSON_INCLUDE_DIR (holding cjson/cJSON.h) and TD_CJSON_LIBRARIES.
# pkg-config first, then a plain search, so that Debian's CMake 3.25 and a
# pip CMake 4.x find the same files.
find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(TD_PC_CJSON QUIET libcjson)
endif()
find_path(TD_CJSON_INCLUDE_DIR cjson/cJSON.h HINTS ${TD_PC_CJSON_INCLUDEDIR})
find_library(TD_CJSON_LIBRARIES NAMES cjson HINTS ${TD_PC_CJSON_LIBDIR})
if(NOT TD_CJSON_INCLUDE_DIR OR NOT TD_CJSON_LIBRARIES)
  message(FATAL_ERROR "textdiff: cJSON not found (Debian: libcjson-dev)")
endif()
