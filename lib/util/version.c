#include "util/error.h"

uint32_t td_version_number(void) { return TD_VERSION_NUMBER; }
const char *td_version_string(void) { return TD_VERSION_STRING; }
uint32_t td_abi_version(void) { return TD_ABI_VERSION; }

td_status td_check_version(uint32_t header_abi_version, uint32_t header_version_number)
{
    TDI_ENTER_NONE();
    if (header_abi_version != TD_ABI_VERSION)
        return tdi_fail(TD_ERR_VERSION,
                        "td_check_version: header ABI %u, library ABI %u (libtextdiff %s)",
                        (unsigned)header_abi_version, (unsigned)TD_ABI_VERSION,
                        TD_VERSION_STRING);
    if (header_version_number > TD_VERSION_NUMBER)
        return tdi_fail(TD_ERR_VERSION,
                        "td_check_version: header version %u is newer than library %u",
                        (unsigned)header_version_number, (unsigned)TD_VERSION_NUMBER);
    return TD_OK;
}
