/* Read-only, shared file mappings: how a model file becomes the model's
 * parameter buffer without a copy (docs/format.md "Loading models"). The
 * mapping itself goes through no allocator hook: it is the kernel's page
 * cache, shared by every process that maps the same file. */
#ifndef TDI_MMAP_H
#define TDI_MMAP_H

#include <stddef.h>

typedef struct tdi_mapping {
    void *addr; /* NULL: nothing mapped */
    size_t size;
} tdi_mapping;

/* Map the whole regular file at `path` (PROT_READ, MAP_SHARED). Returns 1
 * and fills *m, or 0 with *m empty when the file cannot be opened, is not a
 * regular file, is empty, does not fit the address space, or the kernel
 * refuses to map it: the caller then reads the file instead (and reports
 * what is wrong with it). No error message is set. The descriptor is closed
 * before returning; the mapping stays valid after the file is renamed over
 * or deleted. */
int tdi_map_file(const char *path, tdi_mapping *m);

/* Unmap (a no-op on an empty mapping) and empty *m. */
void tdi_unmap(tdi_mapping *m);

#endif
