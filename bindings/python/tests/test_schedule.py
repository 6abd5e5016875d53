"""Schedule: kinds, parameters, α, α′ and the weight."""

import math
import unittest

from support import td


class TestSchedule(unittest.TestCase):
    def test_mlm(self):
        s = td.Schedule.mlm()
        cfg = s.config
        self.assertEqual(s.kind, td.ScheduleKind.FIXED_RATE)
        self.assertAlmostEqual(cfg.rate, 0.15)
        self.assertEqual(cfg.bert_corruption, 0)
        self.assertAlmostEqual(s.weight(0.15), 1 / 0.15)
        self.assertAlmostEqual(s.alpha(0.15), 0.85)
        self.assertEqual(td.Schedule.mlm(rate=0.3, bert_corruption=True).config[:3],
                         (td.ScheduleKind.FIXED_RATE, cfg.eps, cfg.power))
        self.assertEqual(td.Schedule.mlm(bert_corruption=True).config.bert_corruption, 1)

    def test_diffusion_kinds(self):
        self.assertEqual(td.Schedule.diffusion().kind, td.ScheduleKind.LOGLINEAR)
        self.assertEqual(td.Schedule().kind, td.ScheduleKind.LOGLINEAR)
        for kind in ("linear", "loglinear", "cosine", "polynomial"):
            s = td.Schedule.diffusion(kind)
            self.assertEqual(s.kind.name.lower(), kind)
            self.assertEqual(s.alpha(0.0), 1.0)
            self.assertLess(s.alpha_deriv(0.5), 0)
            self.assertGreater(s.weight(0.5), 0)
        with self.assertRaises(ValueError):
            td.Schedule.diffusion("fixed_rate")

    def test_closed_forms(self):
        s = td.Schedule.diffusion(td.ScheduleKind.COSINE)
        self.assertAlmostEqual(s.alpha(0.5), math.cos(math.pi / 4))
        self.assertAlmostEqual(s.alpha_deriv(0.5), -math.pi / 2 * math.sin(math.pi / 4))
        p = td.Schedule.diffusion("polynomial", power=3.0)
        self.assertEqual(p.config.power, 3.0)
        self.assertAlmostEqual(p.alpha(0.5), 1 - 0.5 ** 3)
        lin = td.Schedule(td.ScheduleKind.LINEAR, t_min=0.01)
        self.assertAlmostEqual(lin.weight(0.0), 1 / 0.01)  # w at max(t, t_min)

    def test_bad_parameters(self):
        with self.assertRaises(td.InvalidArgumentError) as cm:
            td.Schedule.mlm(rate=1.5)
        self.assertIn("rate", cm.exception.message)
        with self.assertRaises(td.InvalidArgumentError) as cm:
            td.Schedule.diffusion(bert_corruption=1)
        self.assertIn("bert_corruption", cm.exception.message)
        s = td.Schedule.diffusion()
        for fn in (s.alpha, s.alpha_deriv, s.weight):
            with self.assertRaises(td.InvalidArgumentError):
                fn(-0.1)


if __name__ == "__main__":
    unittest.main()
