#!/usr/bin/env python3
"""Checks the README's column-major claim through the C ABI (ctypes, stdlib only): a 5x3 matrix
declared as-is and its transpose declared [3, 5] get transposed Muon updates with lr_scale "none",
and with "mlx" the updates differ by exactly sqrt(5/3)."""
import ctypes as C, math
import os, sys
L=C.CDLL(os.path.join(os.environ.get("DESCENT_PREFIX","/usr/local"),"lib","libdescent.so.1"))
L.descent_optimizer_create.argtypes=[C.c_char_p,C.POINTER(C.c_void_p),C.c_char_p,C.c_size_t]
L.descent_optimizer_configure_json.argtypes=[C.c_void_p,C.c_char_p]
L.descent_optimizer_add_parameter.argtypes=[C.c_void_p,C.c_char_p,C.c_uint,C.c_size_t,C.POINTER(C.c_int64)]
L.descent_optimizer_update_indexed.argtypes=[C.c_void_p,C.c_size_t,C.POINTER(C.c_size_t),C.c_void_p,C.c_void_p,C.POINTER(C.c_void_p),C.POINTER(C.c_void_p)]
def step(rows,cols,W,G,scale):  # W,G row-major lists
    h=C.c_void_p(); assert L.descent_optimizer_create(b"muon",C.byref(h),None,0)==0
    assert L.descent_optimizer_configure_json(h,('{"learning_rate":0.1,"lr_scale":"%s"}'%scale).encode())==0
    sh=(C.c_int64*2)(rows,cols); assert L.descent_optimizer_add_parameter(h,b"w",1,2,sh)==0
    p=(C.c_float*len(W))(*W); g=(C.c_float*len(G))(*G)
    idx=(C.c_size_t*1)(0); ps=(C.c_void_p*1)(C.addressof(p)); gs=(C.c_void_p*1)(C.addressof(g))
    assert L.descent_optimizer_update_indexed(h,1,idx,None,None,ps,gs)==0
    return list(p)
m,n=5,3
W=[[math.sin(i+2*j) for j in range(n)] for i in range(m)]; G=[[math.cos(3*i-j) for j in range(n)] for i in range(m)]
rm=lambda M:[x for r in M for x in r]; T=lambda M:[list(c) for c in zip(*M)]
for s in ("none","mlx"):
    A=step(m,n,rm(W),rm(G),s)            # W as m x n
    B=step(n,m,rm(T(W)),rm(T(G)),s)      # W^T as n x m
    Bt=rm(T([B[i*m:(i+1)*m] for i in range(n)]))
    dA=[w-a for w,a in zip(rm(W),A)]; dB=[w-b for w,b in zip(rm(W),Bt)]
    diff=max(abs(a-b) for a,b in zip(A,Bt)); ratio=sum(dA)/sum(dB)
    print("check_transpose: lr_scale=%s: max|A-B^T|=%.2e, update ratio %.6f" % (s, diff, ratio))
    if s=="none" and diff>1e-6: sys.exit("check_transpose: FAIL: Muon is not transpose-equivariant")
    if s=="mlx" and abs(ratio-math.sqrt(5/3))>1e-4: sys.exit("check_transpose: FAIL: mlx scale ratio")
