/* Writes a few small valid checkpoints as a starting corpus for
 * fuzz_checkpoint: gen_checkpoint_seeds <directory>. */
#include <stdint.h>
#include <stdio.h>

#include "io/checkpoint.h"
#include "util/alloc.h"

static int save(tdi_ckpt_writer *w, const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    void *buf = NULL;
    size_t n = 0;
    if (tdi_ckpt_write_memory(w, &buf, &n) != TD_OK) return 1;
    FILE *f = fopen(path, "wb");
    int bad = !f || fwrite(buf, 1, n, f) != n;
    if (f) bad |= fclose(f) != 0;
    tdi_free(tdi_ckpt_writer_allocator(w), buf);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <directory>\n", argv[0]);
        return 2;
    }
    static const float w2x3[6] = { 0.5f, -1.0f, 2.0f, 0.0f, 1e-3f, -7.25f };
    static const uint64_t d2x3[2] = { 2, 3 }, d5[1] = { 5 }, d4[1] = { 4 };
    static const unsigned char ids[5] = { 1, 2, 3, 4, 5 };
    static const uint64_t rng[4] = { 1, 2, 3, 0xffffffffffffffffull };
    static const int64_t shape[3] = { 258, 256, -1 };
    static const double sched[2] = { 1e-3, 0.15 };
    int bad = 0;
    for (int level = 0; level <= 9; level += 9) {
        tdi_ckpt_writer *w = NULL;
        if (tdi_ckpt_writer_create(NULL, &w) != TD_OK) return 1;
        tdi_ckpt_writer_set_level(w, level);
        if (level == 0) bad |= save(w, argv[1], "empty.tdc");
        tdi_ckpt_put_i64(w, "train.step", 1250);
        tdi_ckpt_put_u64(w, "seed", 42);
        tdi_ckpt_put_f64(w, "lr", 1e-3);
        tdi_ckpt_put_string(w, "tokenizer", "bytes");
        tdi_ckpt_put_i64_array(w, "shape", shape, 3);
        tdi_ckpt_put_u64_array(w, "rng.state", rng, 4);
        tdi_ckpt_put_f64_array(w, "schedule", sched, 2);
        bad |= save(w, argv[1], level ? "meta-z.tdc" : "meta.tdc");
        tdi_ckpt_add_tensor(w, "0.qkv.w", TDI_DTYPE_F32, 2, d2x3, w2x3, TDI_CKPT_COMPRESS);
        tdi_ckpt_add_tensor(w, "ids", TDI_DTYPE_U8, 1, d5, ids, 0);
        tdi_ckpt_add_tensor(w, "opt.rng", TDI_DTYPE_U64, 1, d4, rng, TDI_CKPT_COMPRESS);
        tdi_ckpt_add_tensor(w, "scalar", TDI_DTYPE_F32, 0, NULL, w2x3, 0);
        bad |= save(w, argv[1], level ? "full-z.tdc" : "full.tdc");
        tdi_ckpt_writer_free(w);
    }
    return bad;
}
