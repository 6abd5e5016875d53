"""The latent diffusion functions through the ctypes declarations of _lib
(the binding has no Python classes for them yet): create, train both
stages, generate, and an error with its message."""

import ctypes
import unittest

import support
from support import td

from textdiff import _lib

lib = _lib.lib


class TestLatentThroughCtypes(unittest.TestCase):
    def test_workflow(self):
        enc = support.tiny_model()
        cfg = _lib.td_latent_config()
        self.assertEqual(lib.td_latent_config_init(ctypes.byref(cfg), ctypes.sizeof(cfg)), 0)
        self.assertEqual((cfg.n_latents, cfg.schedule, cfg.tan_d), (32, 1, 9.0))
        cfg.seq_len, cfg.n_latents, cfg.d_latent, cfg.n_heads = support.T, 4, 8, 2
        cfg.n_enc_layers = cfg.n_dec_layers = cfg.n_den_layers = 1
        cfg.d_ff = 16
        lm = _lib.P_latent_model()
        self.assertEqual(lib.td_latent_model_create(enc._ptr, ctypes.byref(cfg), 1, None,
                                                    ctypes.byref(lm)), 0)
        try:
            tokens = (ctypes.c_int32 * (2 * support.T))(*[ord(c) for c in
                                                          support.TEXT[:2 * support.T]])
            for stage in (td.LatentStage.AUTOENCODER, td.LatentStage.DIFFUSION):
                tc = _lib.td_latent_train_config()
                lib.td_latent_train_config_init(ctypes.byref(tc), ctypes.sizeof(tc))
                tc.batch_size, tc.stage = 2, int(stage)
                tr = _lib.P_latent_trainer()
                self.assertEqual(lib.td_latent_trainer_create(lm, ctypes.byref(tc),
                                                              ctypes.byref(tr)), 0)
                st = _lib.td_latent_train_stats(struct_size=ctypes.sizeof(
                    _lib.td_latent_train_stats))
                self.assertEqual(lib.td_latent_trainer_step(tr, tokens, ctypes.byref(st)), 0)
                self.assertEqual(st.step, 1)
                lib.td_latent_trainer_free(tr)
            sc = _lib.td_latent_sample_config()
            lib.td_latent_sample_config_init(ctypes.byref(sc), ctypes.sizeof(sc))
            sc.steps, sc.sampler = 3, int(td.LatentSampler.DDPM)
            ids = (ctypes.c_int32 * support.T)()
            self.assertEqual(lib.td_latent_model_generate(lm, ctypes.byref(sc), 1, ids, None), 0)
            self.assertTrue(all(0 <= i < 256 for i in ids))
            sc.steps = 0
            self.assertEqual(lib.td_latent_model_generate(lm, ctypes.byref(sc), 1, ids, None),
                             td.Status.ERR_INVALID_ARG)
            buf = ctypes.create_string_buffer(256)
            lib.td_latent_model_errmsg(lm, buf, 256)
            self.assertIn(b"steps", buf.value)
        finally:
            lib.td_latent_model_free(lm)
            enc.close()


if __name__ == "__main__":
    unittest.main()
