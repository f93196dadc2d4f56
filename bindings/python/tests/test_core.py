"""Loading, versions, status codes, the exception hierarchy and argument validation."""
import ctypes
import os
import pickle
import subprocess
import sys
import unittest

import numpy as np

from helpers import mi


class TestLoading(unittest.TestCase):
    def test_version_matches_library(self):
        self.assertRegex(mi.version, r"^\d+\.\d+\.\d+$")
        major, minor, patch = (int(x) for x in mi.version.split("."))
        self.assertEqual(mi.version_number, major * 10000 + minor * 100 + patch)
        self.assertEqual(major, 0)

    def test_library_from_environment(self):
        env = os.environ.get("MOMINIT_LIBRARY")
        if not env:
            self.skipTest("MOMINIT_LIBRARY is not set")
        self.assertEqual(mi.library_path, env)

    def test_bad_library_path_is_a_clear_import_error(self):
        code = "import mominit"
        env = dict(os.environ, MOMINIT_LIBRARY="/nonexistent/libmominit.so.0")
        pkg = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
        env["PYTHONPATH"] = pkg
        r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("MOMINIT_LIBRARY", r.stderr)
        self.assertIn("/nonexistent/libmominit.so.0", r.stderr)


class TestStatus(unittest.TestCase):
    def test_strerror_and_names(self):
        self.assertEqual(mi.status_name(0), "MOM_OK")
        for st in mi.Status:
            if st == 0:
                continue
            self.assertEqual(mi.status_name(st), "MOM_" + st.name)
            self.assertTrue(mi.strerror(st))
            self.assertNotEqual(mi.strerror(st), "unknown status")
        self.assertEqual(mi.strerror(-1000), "unknown status")

    def test_hierarchy_keyed_by_status(self):
        builtin = {-1: ValueError, -2: MemoryError, -3: ValueError, -4: RuntimeError,
                   -5: OSError, -6: ValueError, -7: ArithmeticError,
                   -8: NotImplementedError, -9: RuntimeError}
        for st, cls in mi.ERRORS.items():
            e = mi.errors.error_for(st, "mom_x", "detail text")
            self.assertIsInstance(e, cls)
            self.assertIsInstance(e, mi.MomError)
            self.assertIsInstance(e, builtin[st])
            self.assertEqual(e.status, st)
            self.assertEqual(e.name, mi.status_name(st))
            self.assertEqual(e.strerror, mi.strerror(st))
            self.assertIn(e.strerror, str(e))
            self.assertIn("detail text", str(e))
            self.assertIn("mom_x", str(e))
            # exceptions survive pickling (multiprocessing)
            e2 = pickle.loads(pickle.dumps(e))
            self.assertIs(type(e2), cls)
            self.assertEqual((e2.status, e2.detail), (st, "detail text"))
        self.assertIs(type(mi.errors.error_for(-99)), mi.MomError)

    def test_library_failure_carries_detail_message(self):
        with mi.Net.feedforward([2, 3, 1]) as net:
            with self.assertRaises(mi.InvalidError) as cm:
                net.block(7)
            e = cm.exception
            self.assertEqual(e.status, mi.Status.E_INVALID)
            self.assertEqual(e.function, "mom_net_block")
            self.assertIn("out of range", e.detail)
            self.assertIn("7", e.detail)
            self.assertIn(mi.strerror(-1), str(e))
            self.assertIn(e.detail, str(e))
            # the message was read right after the failure: a successful query leaves the
            # handle's message, a later call that may change the handle clears it, and the
            # exception keeps its copy throughout
            net.block(0)
            self.assertIn("out of range", net._errmsg())
            net.reserve(4)
            self.assertEqual(net._errmsg(), "")
            self.assertIn("out of range", e.detail)

    def test_shape_error_from_library(self):
        with mi.Net.feedforward([2, 3, 1]) as net, mi.Optimizer("sgd", 5) as opt:
            x = np.zeros((4, 2), np.float32)
            t = np.zeros((4, 1), np.float32)
            with self.assertRaises(mi.ShapeError) as cm:
                opt.step_net(net, (x, t))
            self.assertEqual(cm.exception.status, -3)
            self.assertIn("5", cm.exception.detail)
            self.assertIsInstance(cm.exception, ValueError)

    def test_unsupported(self):
        with mi.Net.feedforward([2, 2]) as net:
            x = np.zeros((2, 2), np.float32)
            net.gv_begin((x, x))
            with self.assertRaises(mi.UnsupportedError) as cm:
                net.gv(np.zeros(net.num_params, np.float32), struct_damping=0.1)
            self.assertIsInstance(cm.exception, NotImplementedError)
            self.assertTrue(cm.exception.detail)


class TestArrays(unittest.TestCase):
    def setUp(self):
        self.net = mi.Net.feedforward([3, 4, 2], "tanh", "linear_squared")
        self.x = np.ones((5, 3), np.float32)
        self.t = np.zeros((5, 2), np.float32)

    def tearDown(self):
        self.net.close()

    def test_wrong_dtype_is_type_error(self):
        with self.assertRaisesRegex(TypeError, "float32"):
            self.net.loss((self.x.astype(np.float64), self.t))
        with self.assertRaisesRegex(TypeError, "numpy.ndarray"):
            self.net.loss((self.x.tolist(), self.t))
        with self.assertRaisesRegex(TypeError, "float32"):
            self.net.loss((self.x.astype(">f4"), self.t))

    def test_layout_and_shape_are_value_errors(self):
        xf = np.ones((5, 6), np.float32)[:, ::2]  # shape (5, 3), strided
        with self.assertRaisesRegex(ValueError, "C-contiguous"):
            self.net.loss((xf, self.t))
        with self.assertRaisesRegex(ValueError, "width 4"):
            self.net.loss((np.ones((5, 4), np.float32), self.t))
        with self.assertRaisesRegex(ValueError, "targets"):
            self.net.loss((self.x, np.zeros((4, 2), np.float32)))
        with self.assertRaisesRegex(ValueError, "needs 2-d"):
            self.net.loss((self.x[None], self.t[None]))
        with self.assertRaisesRegex(ValueError, "elements"):
            self.net.loss((self.x, self.t), params=np.zeros(3, np.float32))
        ro = self.x.copy()
        ro.flags.writeable = False
        self.net.loss((ro, self.t))  # read-only inputs are fine
        g = np.zeros(self.net.num_params, np.float32)
        g.flags.writeable = False
        with self.assertRaisesRegex(ValueError, "writable"):
            self.net.loss_grad((self.x, self.t), grad=g)

    def test_copy_only_when_asked(self):
        b = mi.Batch(self.x.astype(np.float64).tolist(), self.t.astype(np.float64), copy=True)
        self.assertEqual(b.inputs.dtype, np.float32)
        self.assertAlmostEqual(self.net.loss(b), self.net.loss((self.x, self.t)))
        # arrays that fit are never copied, even with copy=True (the batch holds views of them)
        b2 = mi.Batch(self.x, self.t, copy=True)
        self.assertIs(b2.inputs.base, self.x)
        self.assertIs(b2.targets.base, self.t)

    def test_enum_coercion(self):
        with mi.Net.feedforward([2, 2, 2], "RELU", mi.Output.SOFTMAX_XENT) as n:
            self.assertEqual(n.layer_act(1), mi.Act.RELU)
            self.assertEqual(n.output, mi.Output.SOFTMAX_XENT)
        with self.assertRaisesRegex(ValueError, "unknown Act"):
            mi.Net.feedforward([2, 2, 2], "swish")
        with self.assertRaises(TypeError):
            mi.Net.feedforward([2, 2, 2], 2.5)
        # an int outside the enum reaches the library, which names it
        with self.assertRaises(mi.InvalidError):
            mi.Net.feedforward([2, 2, 2], 77)

    def test_closed_handle(self):
        net = mi.Net.feedforward([2, 2])
        net.close()
        self.assertTrue(net.closed)
        with self.assertRaisesRegex(ValueError, "closed Net"):
            net.num_params
        net.close()  # idempotent

    def test_handles_pass_to_ctypes(self):
        # _as_parameter_ lets advanced users call the C API directly
        self.assertEqual(mi._lib.lib.mom_net_num_params(self.net), self.net.num_params)
        self.assertEqual(ctypes.c_void_p(self.net._ptr).value, self.net._ptr)


if __name__ == "__main__":
    unittest.main()
