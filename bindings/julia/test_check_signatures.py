#!/usr/bin/env python3
"""Proves check_signatures.py can fail: feeds it copies of the Julia sources with one mistake
each and expects the mistake to be reported (and the unmodified copy to pass)."""
import contextlib
import glob
import io
import os
import shutil
import tempfile
import unittest

import check_signatures

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = sorted(glob.glob(os.path.join(HERE, "src", "*.jl")))


class MutatedCopies(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        for s in SOURCES:
            shutil.copy(s, self.tmp)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def mutate(self, filename, old, new):
        path = os.path.join(self.tmp, filename)
        text = open(path, encoding="utf-8").read()
        self.assertEqual(text.count(old), 1, f"the mutation target must occur once: {old!r}")
        open(path, "w", encoding="utf-8").write(text.replace(old, new))

    def run_check(self):
        files = sorted(glob.glob(os.path.join(self.tmp, "*.jl")))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = check_signatures.main([*files])
        return rc, err.getvalue()

    def assertCaught(self, *needles):
        rc, err = self.run_check()
        self.assertEqual(rc, 1, "the checker passed a broken binding")
        for n in needles:
            self.assertIn(n, err)

    def test_unmodified_copy_passes(self):
        rc, err = self.run_check()
        self.assertEqual(rc, 0, err)

    def test_wrong_argument_type(self):
        self.mutate("capi.jl", "(Ptr{Cvoid}, Cstring, Int64), opt, key, value)",
                    "(Ptr{Cvoid}, Cstring, Int32), opt, key, value)")
        self.assertCaught("descent_optimizer_set_int: argument 3: C 'int64_t' is Julia Int64, "
                          "not Int32")

    def test_size_t_as_int(self):
        self.mutate("capi.jl", "(Ptr{Cvoid}, Ref{Csize_t}), opt, bytes)",
                    "(Ptr{Cvoid}, Ref{Int}), opt, bytes)")
        self.assertCaught("descent_optimizer_flat_size: argument 2: C 'size_t*'")

    def test_argument_removed(self):
        self.mutate("capi.jl",
                    "(Ptr{Cvoid}, Cstring, Cuint, Csize_t, Ptr{Int64}), opt, name, dtype, ndim, shape)",
                    "(Ptr{Cvoid}, Cstring, Cuint, Ptr{Int64}), opt, name, dtype, shape)")
        self.assertCaught("descent_optimizer_add_parameter: 4 argument types, the header has 5")

    def test_function_renamed(self):
        self.mutate("capi.jl", "ccall((:descent_optimizer_init, libdescent)",
                    "ccall((:descent_optimizer_initialise, libdescent)")
        self.assertCaught("ccall of descent_optimizer_initialise, which is not a DESCENT_API",
                          "header function descent_optimizer_init has no ccall wrapper")

    def test_wrong_return_type(self):
        self.mutate("capi.jl", "ccall((:descent_optimizer_free, libdescent), Cvoid",
                    "ccall((:descent_optimizer_free, libdescent), Cint")
        self.assertCaught("descent_optimizer_free: returns C 'void'")

    def test_size_t_return_as_cuint(self):
        self.mutate("capi.jl", "ccall((:descent_kind_count, libdescent), Csize_t",
                    "ccall((:descent_kind_count, libdescent), Cuint")
        self.assertCaught("descent_kind_count: returns C 'size_t'")

    def test_type_count_differs_from_values(self):
        self.mutate("capi.jl", "(Ptr{Cvoid}, Cstring), opt, json)", "(Ptr{Cvoid}, Cstring), opt)")
        self.assertCaught("descent_optimizer_configure_json: 2 argument types but 1 values passed")

    def test_wrong_trampoline_signature(self):
        self.mutate("callbacks.jl", "(Ptr{UInt8}, Csize_t, Ptr{Int64}, Ptr{Cvoid}, Ptr{Bool},",
                    "(Ptr{UInt8}, Csize_t, Ptr{Int64}, Ptr{Cvoid}, Ptr{Cint},")
        self.assertCaught("descent_filter_fn: argument 5: C 'bool*'")

    def test_reduce_op_as_int(self):
        self.mutate("callbacks.jl", "(Ptr{Cdouble}, Csize_t, Cuint, Ptr{Cvoid}, Ptr{UInt8},",
                    "(Ptr{Cdouble}, Csize_t, Cint, Ptr{Cvoid}, Ptr{UInt8},")
        self.assertCaught("descent_allreduce_fn: argument 3: C 'descent_reduce_op' is Julia Cuint")

    def test_collectives_handle_as_int(self):
        self.mutate("capi.jl", "(Ptr{Cvoid}, Ref{Csize_t}, Ref{Csize_t}, Ptr{UInt8}, Csize_t),\n          coll, rank, world_size",
                    "(Csize_t, Ref{Csize_t}, Ref{Csize_t}, Ptr{UInt8}, Csize_t),\n          coll, rank, world_size")
        self.assertCaught("descent_collectives_rank: argument 1: C 'const descent_collectives*'")

    def test_missing_trampoline(self):
        self.mutate("callbacks.jl", "@cfunction(_schedule_trampoline,", "@cfunction(_sched,")
        self.assertCaught("callback typedef descent_schedule_fn has no @cfunction",
                          "@cfunction(_sched) matches no callback typedef")

    def test_thread_local_error_used(self):
        self.mutate("optimizer.jl", "msg = unsafe_string(descent_optimizer_last_error(opt))\n"
                    "    throw(DescentError(status, msg, _take_pending!",
                    "msg = unsafe_string(descent_last_error())\n"
                    "    throw(DescentError(status, msg, _take_pending!")
        self.assertCaught("descent_last_error used outside its wrapper")

    def test_header_function_added(self):
        header = os.path.join(self.tmp, "descent.h")
        text = open(check_signatures.DEFAULT_HEADER, encoding="utf-8").read()
        text = text.replace("#ifdef __cplusplus\n}", "DESCENT_API size_t descent_future_count(void);\n"
                            "#ifdef __cplusplus\n}")
        open(header, "w", encoding="utf-8").write(text)
        files = sorted(glob.glob(os.path.join(self.tmp, "*.jl")))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = check_signatures.main(["--header", header, *files])
        self.assertEqual(rc, 1)
        self.assertIn("header function descent_future_count has no ccall wrapper", err.getvalue())


if __name__ == "__main__":
    unittest.main(verbosity=2)
