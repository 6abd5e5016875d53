/* Prints the layout of every public struct as the compiler sees it, from
 * tests/common/layouts.h, as JSON: {"struct": {"size": n, "fields":
 * [{"name", "offset", "size", "pinned"}, ...]}, ...}. The Python binding's
 * tests compare their ctypes mirrors with it (bindings/python/tests). */
#include <stddef.h>
#include <stdio.h>

#include "common/layouts.h"

static const char *sep;

static void field(const char *name, size_t offset, size_t size, size_t pinned)
{
    printf("%s\n      {\"name\": \"%s\", \"offset\": %zu, \"size\": %zu, \"pinned\": %zu}", sep,
           name, offset, size, pinned);
    sep = ",";
}

#define FIELD(T_, f, off) field(#f, offsetof(T_, f), sizeof(((T_ *)0)->f), (off));
#define STRUCT(T_, LIST)                                                    \
    printf("%s\n  \"%s\": {\"size\": %zu, \"fields\": [", first ? "" : ",", #T_, sizeof(T_)); \
    sep = "";                                                               \
    LIST(FIELD)                                                             \
    printf("\n  ]}");                                                       \
    first = 0;

int main(void)
{
    int first = 1;
    printf("{");
    TD_LAYOUT_STRUCTS(STRUCT)
    printf("\n}\n");
    return 0;
}
