#include "util/mmap.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int tdi_map_file(const char *path, tdi_mapping *m)
{
    m->addr = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat sb;
    void *addr = MAP_FAILED;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 &&
        (uintmax_t)sb.st_size <= SIZE_MAX)
        addr = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
    (void)close(fd);
    if (addr == MAP_FAILED) return 0;
    m->addr = addr;
    m->size = (size_t)sb.st_size;
    return 1;
}

void tdi_unmap(tdi_mapping *m)
{
    if (m->addr != NULL) (void)munmap(m->addr, m->size);
    m->addr = NULL;
    m->size = 0;
}
